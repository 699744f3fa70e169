//! View models: jobs, scores and feedback as the templates show them (built from the API's
//! types; the wording of numbers and times is in [`crate::format`]).

use api_types::{Job, JobFeedback, JobStatus, Prediction, Submitted};

use crate::format::{display_label, human_time, score_as_sent};

/// The example's answer as the landing page shows it.
#[derive(Debug, Clone)]
pub struct Example {
    pub bars: Vec<Bar>,
    pub model_name: String,
    pub sure: bool,
    pub candidates: String,
    pub elapsed: Option<String>,
}

/// One bar of the top-k chart.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    /// "25.5%"
    pub percent: String,
    /// 0..=100, the CSS width class `w-N`.
    pub width: u8,
    /// The score, 0..=1.
    pub score: f64,
    /// The class's index in the model's label list.
    pub class_id: usize,
}

impl Bar {
    fn from_prediction(p: &Prediction) -> Self {
        let score = score_as_sent(p.score);
        let score = if score.is_finite() {
            score.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let pct = score * 100.0;
        // One decimal everywhere, so the column lines up; tiny scores are not shown as "0.0%".
        let percent = if pct >= 0.05 {
            format!("{pct:.1}%")
        } else {
            "< 0.1%".to_owned()
        };
        // A visible sliver even for tiny scores, so every row has a bar.
        let width = (pct.round() as u8).max(1);
        Self {
            label: display_label(&p.label),
            percent,
            width,
            score,
            class_id: p.class_id,
        }
    }
}

/// Below this top score the result page says it is not sure and names the likely candidates
/// instead of one answer.
pub const CONFIDENT: f64 = 0.5;

/// The feedback a person gave, as the result page and history show it.
#[derive(Debug, Clone)]
pub struct FeedbackView {
    /// `Some(true)` right, `Some(false)` wrong, `None` only a comment.
    pub is_correct: Option<bool>,
    pub correct_label: String,
    pub comment: String,
}

impl FeedbackView {
    fn from_api(f: &JobFeedback) -> Self {
        Self {
            is_correct: f.is_correct,
            correct_label: f.correct_label.clone().unwrap_or_default(),
            comment: f.feedback.clone(),
        }
    }

    /// True when the person said the best guess was wrong.
    pub fn wrong(&self) -> bool {
        self.is_correct == Some(false)
    }

    /// True when the person said the best guess was right.
    pub fn right(&self) -> bool {
        self.is_correct == Some(true)
    }
}

/// A job as the templates show it.
#[derive(Debug, Clone)]
pub struct JobView {
    pub id: String,
    pub status: String,
    pub status_text: &'static str,
    pub finished: bool,
    pub model: String,
    pub created: String,
    pub created_iso: String,
    pub cached: bool,
    pub bars: Vec<Bar>,
    pub error: Option<String>,
    pub elapsed: Option<String>,
    /// The file's own name when the API kept one, else a description ("Image of 22 Nov …").
    pub name: String,
    /// The model's human name ("EfficientNet-Lite0"), filled in by the page handler.
    pub model_name: String,
    /// The person's feedback, once given.
    pub feedback: Option<FeedbackView>,
    /// The top score as a fraction (0 when there is none).
    pub top_score: f64,
}

impl JobView {
    /// Shape a job for display.
    pub fn from_job(job: &Job) -> Self {
        let created_iso = job.created_at.clone();
        let created = human_time(&created_iso);
        let name = job
            .original_file_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("Image of {created}"));
        let top_score = job
            .predictions()
            .first()
            .map(|p| score_as_sent(p.score))
            .filter(|s| s.is_finite())
            .unwrap_or(0.0);
        Self {
            name,
            model_name: job.model.clone(),
            feedback: job.feedback.as_ref().map(FeedbackView::from_api),
            top_score,
            id: job.job_id.clone(),
            status: job.status.as_str().to_owned(),
            status_text: status_text(job.status),
            finished: job.status.is_terminal(),
            model: job.model.clone(),
            created,
            created_iso,
            cached: job.cached,
            bars: job.predictions().iter().map(Bar::from_prediction).collect(),
            error: job.error.clone(),
            elapsed: job
                .result
                .as_ref()
                .map(|r| format!("{:.0} ms", r.elapsed_ms)),
        }
    }

    /// Shape what `POST /predictions` answered: the cached job, or a queued one known by id.
    pub fn from_submitted(submitted: &Submitted) -> Self {
        match submitted {
            Submitted::Cached(job) => Self::from_job(job),
            Submitted::Accepted(a) => Self {
                id: a.job_id.clone(),
                status: a.status.as_str().to_owned(),
                status_text: status_text(a.status),
                finished: a.status.is_terminal(),
                model: String::new(),
                created: String::new(),
                created_iso: String::new(),
                cached: false,
                bars: Vec::new(),
                error: None,
                elapsed: None,
                name: "Your image".into(),
                model_name: String::new(),
                feedback: None,
                top_score: 0.0,
            },
        }
    }

    /// The best guess, if the job is done.
    pub fn top(&self) -> Option<&Bar> {
        self.bars.first()
    }

    /// True when the best guess is confident enough to be stated as the answer.
    pub fn sure(&self) -> bool {
        self.top_score >= CONFIDENT
    }

    /// The guesses after the best one.
    pub fn others(&self) -> &[Bar] {
        self.bars.get(1..).unwrap_or_default()
    }

    /// "“Daisy” or “Rose”" (or three names): the likely candidates when not sure. Candidates
    /// are those within reach of the best (at least a third of its score), two or three.
    pub fn candidates(&self) -> String {
        let best = self.top_score;
        let mut names: Vec<String> = self
            .bars
            .iter()
            .enumerate()
            .filter(|(i, b)| *i < 2 || (*i < 3 && b.score * 3.0 >= best))
            .map(|(_, b)| format!("“{}”", b.label))
            .collect();
        match names.len() {
            0 => String::new(),
            1 => names.remove(0),
            _ => {
                let last = names.pop().unwrap_or_default();
                format!("{} or {last}", names.join(", "))
            }
        }
    }

    /// True when the job finished with predictions.
    pub fn is_done(&self) -> bool {
        self.status == "done"
    }
}

/// What a person reads for a job's state.
fn status_text(status: JobStatus) -> &'static str {
    match status {
        JobStatus::Queued => "Waiting in the queue…",
        JobStatus::Processing => "Classifying…",
        JobStatus::Done => "Done",
        JobStatus::Failed => "Failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_show_percentages_and_never_vanish() {
        let bar = |score| {
            Bar::from_prediction(&Prediction {
                label: "academic gown".into(),
                class_id: 400,
                score,
            })
        };
        assert_eq!(bar(0.5).label, "Academic gown");
        let big = bar(0.255);
        assert_eq!(big.percent, "25.5%");
        assert_eq!(big.width, 26);
        let tiny = bar(0.0004);
        assert_eq!(tiny.percent, "< 0.1%");
        assert_eq!(tiny.width, 1);
    }

    fn job(scores: &[(&str, f32)]) -> JobView {
        JobView::from_job(&Job {
            job_id: "j".into(),
            status: JobStatus::Done,
            model: "m".into(),
            image_file_name: "x.jpg".into(),
            original_file_name: Some("peony.jpg".into()),
            created_at: "2025-11-22T14:03:09Z".into(),
            cached: false,
            result: Some(api_types::JobResult {
                predictions: scores
                    .iter()
                    .enumerate()
                    .map(|(i, (l, s))| Prediction {
                        label: (*l).into(),
                        class_id: i,
                        score: *s,
                    })
                    .collect(),
                model: "m".into(),
                elapsed_ms: 1.0,
            }),
            error: None,
            feedback: None,
        })
    }

    #[test]
    fn low_confidence_names_the_candidates() {
        let sure = job(&[("espresso", 0.956), ("cup", 0.02)]);
        assert!(sure.sure());
        assert_eq!(sure.name, "peony.jpg");
        let unsure = job(&[
            ("daisy", 0.222),
            ("rose", 0.2),
            ("tulip", 0.1),
            ("pot", 0.01),
        ]);
        assert!(!unsure.sure());
        assert_eq!(unsure.candidates(), "“Daisy”, “Rose” or “Tulip”");
        let two = job(&[("daisy", 0.4), ("rose", 0.1), ("tulip", 0.05)]);
        assert_eq!(two.candidates(), "“Daisy” or “Rose”");
        assert_eq!(two.others().len(), 2);
    }
}
