//! Reading the tensors of an inference request (JSON or the binary extension) and writing
//! those of the answer. Pure functions of bytes: every way a request can be wrong is a message
//! for a 400, found before anything is queued.

use base64::Engine;
use serde_json::{Map, Value};

use shared::queue::JobInput;
use shared::ModelSpec;

use super::wire::{InferRequest, InferResponse, RequestInput, ResponseOutput};

/// The input that carries encoded images, one per row.
pub const IMAGE_INPUT: &str = "image";
/// The output: every class's probability, `[N, classes]`.
pub const PROBABILITIES: &str = "probabilities";
/// Most rows one request may carry (`max_batch_size` in the model configuration).
pub const MAX_BATCH: usize = 32;

/// A request, read and checked.
#[derive(Debug, PartialEq)]
pub struct Parsed {
    pub id: Option<String>,
    /// What the rows hold: encoded images, or preprocessed `[3, S, S]` tensors (f32 LE).
    pub input: JobInput,
    pub rows: Vec<Vec<u8>>,
    pub outputs: Vec<Wanted>,
}

/// One output to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub name: String,
    pub binary: bool,
    /// Triton's classification extension: the best `k` classes as `"score:index:label"`.
    pub classification: Option<usize>,
}

/// Reads `body`: all JSON, or a JSON header of `header_len` bytes followed by the binary
/// tensors, for a model fed as `spec` says.
pub fn parse(body: &[u8], header_len: Option<usize>, spec: &ModelSpec) -> Result<Parsed, String> {
    let (json, rest) = match header_len {
        Some(n) if n > body.len() => {
            return Err(format!(
                "Inference-Header-Content-Length is {n}, but the body holds {} bytes",
                body.len()
            ))
        }
        Some(n) => body.split_at(n),
        None => (body, &[][..]),
    };
    let req: InferRequest = serde_json::from_slice(json)
        .map_err(|e| format!("the request is not a valid inference request: {e}"))?;
    let [input] = req.inputs.as_slice() else {
        return Err(format!(
            "send exactly one input, `{IMAGE_INPUT}` (BYTES: encoded images) or `{}` (FP32 \
             [N, 3, {s}, {s}]); this request has {}",
            spec.input_name,
            req.inputs.len(),
            s = spec.input_size
        ));
    };
    let binary = binary_data(input, rest)?;
    let (kind, rows) = match input.datatype.as_str() {
        "BYTES" => (JobInput::Image, image_rows(input, binary)?),
        "FP32" => (JobInput::Tensor, tensor_rows(input, binary, spec)?),
        other => {
            return Err(format!(
                "input `{}` is {other}; send BYTES (encoded images) or FP32 (preprocessed)",
                input.name
            ))
        }
    };
    Ok(Parsed {
        id: req.id.clone(),
        input: kind,
        rows,
        outputs: wanted(&req)?,
    })
}

/// The binary data of `input` when it declares some (`binary_data_size`), which must be all
/// of `rest`, the bytes after the JSON header: one input per request.
fn binary_data<'a>(input: &RequestInput, rest: &'a [u8]) -> Result<Option<&'a [u8]>, String> {
    let Some(size) = param_u64(input.parameters.as_ref(), "binary_data_size")? else {
        return if rest.is_empty() {
            Ok(None)
        } else {
            Err(format!(
                "{} bytes follow the JSON header that no input declares",
                rest.len()
            ))
        };
    };
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    match size.cmp(&rest.len()) {
        std::cmp::Ordering::Equal => Ok(Some(rest)),
        std::cmp::Ordering::Greater => Err(format!(
            "input `{}` declares {size} bytes of binary data; {} follow the header",
            input.name,
            rest.len()
        )),
        std::cmp::Ordering::Less => Err(format!(
            "{} bytes follow the JSON header that no input declares",
            rest.len() - size
        )),
    }
}

/// The batch size of `shape` when it is `[N]` followed by exactly `rest` (any N from 1 to
/// [`MAX_BATCH`]).
fn batch_of(input: &RequestInput, rest: &[i64]) -> Result<usize, String> {
    let shape = &input.shape;
    let want = || {
        let dims: Vec<String> = std::iter::once("N".to_owned())
            .chain(rest.iter().map(i64::to_string))
            .collect();
        format!("[{}]", dims.join(", "))
    };
    if shape.len() != rest.len() + 1 || shape[1..] != *rest {
        return Err(format!(
            "input `{}` has shape {shape:?}; it must be {}",
            input.name,
            want()
        ));
    }
    match usize::try_from(shape[0]) {
        Ok(n) if (1..=MAX_BATCH).contains(&n) => Ok(n),
        _ => Err(format!(
            "input `{}` has {} rows; a request carries 1 to {MAX_BATCH}",
            input.name, shape[0]
        )),
    }
}

/// The encoded images of a BYTES input, `[N]` or `[N, 1]`.
fn image_rows(input: &RequestInput, binary: Option<&[u8]>) -> Result<Vec<Vec<u8>>, String> {
    if input.name != IMAGE_INPUT {
        return Err(format!(
            "a BYTES input must be named `{IMAGE_INPUT}`, not `{}`",
            input.name
        ));
    }
    let n = if input.shape.len() == 1 {
        batch_of(input, &[])?
    } else {
        batch_of(input, &[1])?
    };
    let rows = match binary {
        Some(data) => split_bytes(data)?,
        None => json_elements(input)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => base64::engine::general_purpose::STANDARD
                    .decode(s.trim())
                    .map_err(|e| format!("row {i} of `{IMAGE_INPUT}` is not base64: {e}")),
                _ => Err(format!(
                    "row {i} of `{IMAGE_INPUT}` is not a string (base64 of the image's bytes)"
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    if rows.len() != n {
        return Err(format!(
            "input `{IMAGE_INPUT}` declares {n} rows and holds {}",
            rows.len()
        ));
    }
    Ok(rows)
}

/// The rows of a preprocessed FP32 input `[N, 3, S, S]`, each as f32 little-endian bytes.
fn tensor_rows(
    input: &RequestInput,
    binary: Option<&[u8]>,
    spec: &ModelSpec,
) -> Result<Vec<Vec<u8>>, String> {
    if input.name != spec.input_name {
        return Err(format!(
            "an FP32 input must be named `{}` (the model's input), not `{}`",
            spec.input_name, input.name
        ));
    }
    let s = i64::from(spec.input_size);
    let n = batch_of(input, &[3, s, s])?;
    let per_row = 3 * spec.input_size as usize * spec.input_size as usize;
    let bytes = match binary {
        Some(data) => data.to_vec(),
        None => {
            let values = json_elements(input)?;
            let mut out = Vec::with_capacity(values.len() * 4);
            for v in values {
                let x = v.as_f64().ok_or_else(|| {
                    format!(
                        "input `{}` holds an element that is not a number",
                        input.name
                    )
                })?;
                out.extend_from_slice(&(x as f32).to_le_bytes());
            }
            out
        }
    };
    if bytes.len() != n * per_row * 4 {
        return Err(format!(
            "input `{}` holds {} bytes; [{n}, 3, {s}, {s}] FP32 is {}",
            input.name,
            bytes.len(),
            n * per_row * 4
        ));
    }
    let finite = bytes
        .chunks_exact(4)
        .all(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite());
    if !finite {
        return Err(format!("input `{}` holds a NaN or an infinity", input.name));
    }
    Ok(bytes.chunks(per_row * 4).map(<[u8]>::to_vec).collect())
}

/// The elements of a JSON input, nested arrays flattened in row-major order.
fn json_elements(input: &RequestInput) -> Result<Vec<Value>, String> {
    fn flatten(v: &Value, out: &mut Vec<Value>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
            other => out.push(other.clone()),
        }
    }
    let data = input.data.as_ref().ok_or_else(|| {
        format!(
            "input `{}` has neither `data` nor `binary_data_size`",
            input.name
        )
    })?;
    let mut out = Vec::new();
    flatten(data, &mut out);
    Ok(out)
}

/// The elements of a binary BYTES tensor: each a little-endian u32 length, then its bytes.
fn split_bytes(mut data: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let Some((len, tail)) = data.split_first_chunk::<4>() else {
            return Err("a BYTES element's 4-byte length is cut off".into());
        };
        let len = u32::from_le_bytes(*len) as usize;
        if len > tail.len() {
            return Err(format!(
                "a BYTES element declares {len} bytes; {} remain",
                tail.len()
            ));
        }
        out.push(tail[..len].to_vec());
        data = &tail[len..];
    }
    Ok(out)
}

/// `name` of a parameters object as a whole number, if present.
fn param_u64(params: Option<&Map<String, Value>>, name: &str) -> Result<Option<u64>, String> {
    match params.and_then(|p| p.get(name)) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| format!("parameter `{name}` must be a whole number, not {v}")),
    }
}

/// `name` of a parameters object as a boolean, if present.
fn param_bool(params: Option<&Map<String, Value>>, name: &str) -> Result<Option<bool>, String> {
    match params.and_then(|p| p.get(name)) {
        None => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| format!("parameter `{name}` must be true or false, not {v}")),
    }
}

/// The outputs a request asks for: those it names, else every output.
fn wanted(req: &InferRequest) -> Result<Vec<Wanted>, String> {
    let all_binary = param_bool(req.parameters.as_ref(), "binary_data_output")?.unwrap_or(false);
    let named = req.outputs.as_deref().unwrap_or_default();
    if named.is_empty() {
        return Ok(vec![Wanted {
            name: PROBABILITIES.into(),
            binary: all_binary,
            classification: None,
        }]);
    }
    named
        .iter()
        .map(|o| {
            if o.name != PROBABILITIES {
                return Err(format!(
                    "unknown output `{}`; the model's output is `{PROBABILITIES}`",
                    o.name
                ));
            }
            let params = o.parameters.as_ref();
            let classification = match param_u64(params, "classification")? {
                Some(0) => return Err("`classification` must be at least 1".into()),
                Some(k) => Some(usize::try_from(k).unwrap_or(usize::MAX)),
                None => None,
            };
            Ok(Wanted {
                name: o.name.clone(),
                binary: param_bool(params, "binary_data")?.unwrap_or(all_binary),
                classification,
            })
        })
        .collect()
}

/// The answer: its JSON header and the binary data that follows it (empty when every output
/// is JSON). `probs` holds one row of class probabilities per input row.
pub fn respond(
    model: &str,
    version: &str,
    parsed: &Parsed,
    probs: &[Vec<f32>],
    labels: &[String],
) -> (InferResponse, Vec<u8>) {
    let mut blobs = Vec::new();
    let rows = probs.len() as u64;
    let outputs = parsed
        .outputs
        .iter()
        .map(|w| {
            let (datatype, cols, bytes, data) = match w.classification {
                Some(k) => {
                    let texts: Vec<String> =
                        probs.iter().flat_map(|p| classify(p, k, labels)).collect();
                    let cols = (texts.len() as u64).checked_div(rows).unwrap_or(0);
                    let bytes = texts
                        .iter()
                        .flat_map(|t| (t.len() as u32).to_le_bytes().into_iter().chain(t.bytes()))
                        .collect::<Vec<u8>>();
                    ("BYTES", cols, bytes, Value::from(texts))
                }
                None => {
                    let cols = probs.first().map_or(0, Vec::len) as u64;
                    let flat = probs.iter().flatten();
                    let bytes = flat.clone().flat_map(|p| p.to_le_bytes()).collect();
                    let data = Value::from(flat.map(|&p| f64::from(p)).collect::<Vec<f64>>());
                    ("FP32", cols, bytes, data)
                }
            };
            let (parameters, data) = if w.binary {
                let mut p = Map::new();
                p.insert("binary_data_size".into(), Value::from(bytes.len()));
                blobs.extend_from_slice(&bytes);
                (Some(p), None)
            } else {
                (None, Some(data))
            };
            ResponseOutput {
                name: w.name.clone(),
                datatype: datatype.into(),
                shape: vec![rows, cols],
                parameters,
                data,
            }
        })
        .collect();
    let response = InferResponse {
        model_name: model.to_owned(),
        model_version: version.to_owned(),
        id: parsed.id.clone(),
        outputs,
    };
    (response, blobs)
}

/// The best `k` classes of one row as Triton writes them: `"<score, 6 decimals>:<index>:<label>"`.
fn classify(probs: &[f32], k: usize, labels: &[String]) -> Vec<String> {
    let mut idx: Vec<usize> = (0..probs.len()).collect();
    idx.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    idx.into_iter()
        .take(k)
        .map(|i| {
            let label = labels.get(i).map_or("", String::as_str);
            format!("{:.6}:{i}:{label}", probs[i])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn spec(side: u32) -> ModelSpec {
        let text = format!(
            "default = \"m\"\n[models.m]\nfile = \"m.onnx\"\ninput_name = \"input\"\noutput_name = \"logits\"\n\
             input_size = {side}\nresize = {side}\nmean = [0.5, 0.5, 0.5]\nstd = [0.5, 0.5, 0.5]\n\
             labels = \"l.txt\"\noutput = \"logits\"\n"
        );
        shared::Registry::parse(&text).unwrap().models["m"].clone()
    }

    fn json_body(v: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn bytes_rows_in_json_are_base64_and_in_binary_length_prefixed() {
        let b64 = base64::engine::general_purpose::STANDARD.encode(b"\xff\xd8jpeg");
        let body = json_body(
            json!({"id": "r1", "inputs": [{"name": "image", "shape": [2], "datatype": "BYTES",
            "data": [b64, b64]}], "outputs": [{"name": "probabilities", "parameters": {"classification": 3}}]}),
        );
        let p = parse(&body, None, &spec(2)).unwrap();
        assert_eq!(p.rows, vec![b"\xff\xd8jpeg".to_vec(); 2]);
        assert_eq!(p.id.as_deref(), Some("r1"));
        assert_eq!(p.outputs[0].classification, Some(3));
        assert!(!p.outputs[0].binary);

        // As tritonclient sends it: no outputs named, so every output in binary.
        let mut tensor = Vec::new();
        for row in [&b"abc"[..], b"de"] {
            tensor.extend_from_slice(&(row.len() as u32).to_le_bytes());
            tensor.extend_from_slice(row);
        }
        let header = json_body(
            json!({"inputs": [{"name": "image", "shape": [2, 1], "datatype": "BYTES",
            "parameters": {"binary_data_size": tensor.len()}}], "parameters": {"binary_data_output": true}}),
        );
        let body = [header.clone(), tensor.clone()].concat();
        let p = parse(&body, Some(header.len()), &spec(2)).unwrap();
        assert_eq!(p.rows, vec![b"abc".to_vec(), b"de".to_vec()]);
        assert_eq!(
            p.outputs,
            vec![Wanted {
                name: PROBABILITIES.into(),
                binary: true,
                classification: None
            }]
        );

        // A length that runs past the data, and bytes nobody declared.
        let cut = [header.clone(), tensor[..tensor.len() - 1].to_vec()].concat();
        assert!(parse(&cut, Some(header.len()), &spec(2)).is_err());
        let extra = [body.clone(), vec![0]].concat();
        let err = parse(&extra, Some(header.len()), &spec(2)).unwrap_err();
        assert!(err.contains("no input declares"), "{err}");
    }

    #[test]
    fn fp32_rows_must_match_the_models_input() {
        let row: Vec<f32> = (0..12).map(|i| i as f32 / 10.0).collect();
        let body = json_body(
            json!({"inputs": [{"name": "input", "shape": [1, 3, 2, 2], "datatype": "FP32", "data": [row]}]}),
        );
        let p = parse(&body, None, &spec(2)).unwrap();
        assert_eq!(p.input, JobInput::Tensor);
        let want: Vec<u8> = row.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(p.rows, vec![want]);

        for (bad, says) in [
            (
                json!({"name": "input", "shape": [1, 3, 3, 3], "datatype": "FP32", "data": [0.0]}),
                "must be [N, 3, 2, 2]",
            ),
            (
                json!({"name": "input", "shape": [1, 3, 2, 2], "datatype": "FP32", "data": [0.0]}),
                "holds 4 bytes",
            ),
            (
                json!({"name": "data", "shape": [1, 3, 2, 2], "datatype": "FP32", "data": row}),
                "must be named `input`",
            ),
            (
                json!({"name": "input", "shape": [0, 3, 2, 2], "datatype": "FP32", "data": []}),
                "1 to 32",
            ),
            (
                json!({"name": "input", "shape": [1, 3, 2, 2], "datatype": "INT8", "data": row}),
                "is INT8",
            ),
            (
                json!({"name": "image", "shape": [1], "datatype": "BYTES", "data": ["%%%"]}),
                "not base64",
            ),
            (
                json!({"name": "image", "shape": [2], "datatype": "BYTES", "data": ["AAAA"]}),
                "declares 2 rows and holds 1",
            ),
        ] {
            let body = json_body(json!({"inputs": [bad]}));
            let err = parse(&body, None, &spec(2)).unwrap_err();
            assert!(err.contains(says), "{err} (wanted: {says})");
        }
        let nan = [f32::NAN.to_le_bytes().to_vec(), vec![0; 44]].concat();
        let header = json_body(
            json!({"inputs": [{"name": "input", "shape": [1, 3, 2, 2], "datatype": "FP32",
            "parameters": {"binary_data_size": 48}}]}),
        );
        let err = parse(
            &[header.clone(), nan].concat(),
            Some(header.len()),
            &spec(2),
        )
        .unwrap_err();
        assert!(err.contains("NaN"), "{err}");
        let none = json_body(json!({"inputs": []}));
        assert!(parse(&none, None, &spec(2))
            .unwrap_err()
            .contains("exactly one input"));
        let unknown = json_body(
            json!({"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["AA=="]}],
            "outputs": [{"name": "logits"}]}),
        );
        assert!(parse(&unknown, None, &spec(2))
            .unwrap_err()
            .contains("unknown output"));
    }

    #[test]
    fn answers_carry_parameters_only_in_binary_form_and_classes_as_triton_writes_them() {
        let labels: Vec<String> = ["cat", "dog", "fox"].map(String::from).to_vec();
        let parsed = Parsed {
            id: Some("x".into()),
            input: JobInput::Image,
            rows: vec![vec![]],
            outputs: vec![
                Wanted {
                    name: PROBABILITIES.into(),
                    binary: false,
                    classification: Some(2),
                },
                Wanted {
                    name: PROBABILITIES.into(),
                    binary: true,
                    classification: None,
                },
            ],
        };
        let (resp, blob) = respond("m", "1", &parsed, &[vec![0.2, 0.7, 0.1]], &labels);
        let json = serde_json::to_value(&resp).unwrap();
        assert_eq!(json["id"], "x");
        assert_eq!(
            json["outputs"][0]["data"],
            json!(["0.700000:1:dog", "0.200000:0:cat"])
        );
        assert_eq!(json["outputs"][0]["shape"], json!([1, 2]));
        assert!(json["outputs"][0].get("parameters").is_none(), "{json}");
        assert_eq!(json["outputs"][1]["parameters"]["binary_data_size"], 12);
        assert!(json["outputs"][1].get("data").is_none(), "{json}");
        let floats: Vec<f32> = blob
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(floats, vec![0.2, 0.7, 0.1]);
    }
}
