//! The HTTP contract of the API (v1), written once.
//!
//! Every body the API sends or accepts is a named type here: the API serializes them, the UI,
//! the end-to-end tests and `xtask bench-e2e` deserialize the same ones, and utoipa derives the
//! OpenAPI document (`docs/openapi.json`) from them. Field names and the presence or absence of
//! optional fields are the wire format: change them only together with that document.
//!
//! The crate depends on serde, serde_json and utoipa only, so any client can use it.

pub mod collections;
pub mod error;
pub mod feedback;
pub mod health;
pub mod info;
pub mod jobs;
pub mod users;

pub use collections::{
    Collection, CollectionCounts, CollectionItem, CollectionItemPage, CollectionPage,
    CreateCollection, ImagesAdded, ItemState, LabelCount, PartOutcome, PartResult,
    MAX_COLLECTION_NAME_CHARS,
};
pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use feedback::{Feedback, FeedbackPage, FeedbackRequest};
pub use health::{Health, HealthStatus, Readiness, ReadyChecks, ReadyStatus};
pub use info::{Info, ModelInfo, ModelLabels};
pub use jobs::{
    Job, JobAccepted, JobFeedback, JobPage, JobResult, JobStatus, PredictError, PredictResponse,
    Prediction, Submitted, UploadForm, DEFAULT_TOP_K, MAX_TOP_K,
};
pub use users::{
    LoginRequest, RegisterRequest, Token, TokenType, User, UserPage, MAX_EMAIL_LEN, MAX_NAME_CHARS,
    MAX_PASSWORD_CHARS, MIN_NAME_CHARS, MIN_PASSWORD_CHARS,
};

/// One page of a listing (`?page=&per_page=`), with the total count across all pages.
///
/// A macro rather than a generic type so each listing is a plainly named schema in the OpenAPI
/// document (`JobPage`, `UserPage`, `FeedbackPage`).
macro_rules! page_type {
    ($(#[$doc:meta])* $name:ident, $item:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
        pub struct $name {
            /// This page's items.
            pub items: Vec<$item>,
            /// 1-based page number.
            pub page: u32,
            /// Items per page (1..=100).
            pub per_page: u32,
            /// Items across all pages.
            pub total: i64,
        }

        impl $name {
            /// Page `page` of `total` items, `per_page` a page.
            pub fn new(items: Vec<$item>, page: u32, per_page: u32, total: i64) -> Self {
                Self {
                    items,
                    page,
                    per_page,
                    total,
                }
            }
        }
    };
}
pub(crate) use page_type;
