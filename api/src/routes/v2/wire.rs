//! The bodies of the Open Inference Protocol (KServe V2, as Triton speaks it over HTTP/REST):
//! <https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/>. Field names
//! are the protocol's; they are not part of this API's own contract (`api_types`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Every V2 error: `{"error": "message"}` with a non-200 status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct V2Error {
    pub error: String,
}

/// `GET /v2`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ServerMetadata {
    pub name: String,
    pub version: String,
    /// The protocol extensions served: `binary_tensor_data` and `classification`.
    pub extensions: Vec<String>,
}

/// One input or output in a model's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TensorMetadata {
    pub name: String,
    pub datatype: String,
    /// `-1` for a dimension of any size (the batch).
    pub shape: Vec<i64>,
}

/// `GET /v2/models/{model}`: the inputs a request may carry (exactly one of them) and the
/// output it can ask for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelMetadata {
    pub name: String,
    /// One version: the first 12 hex digits of the model file's SHA-256 (`1` when the
    /// registry gives none).
    pub versions: Vec<String>,
    pub platform: String,
    pub inputs: Vec<TensorMetadata>,
    pub outputs: Vec<TensorMetadata>,
}

/// One tensor of Triton's model configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConfigTensor {
    pub name: String,
    /// Triton's type names: `TYPE_STRING`, `TYPE_FP32`.
    pub data_type: String,
    /// Without the batch dimension.
    pub dims: Vec<i64>,
}

/// `GET /v2/models/{model}/config`: the part of Triton's model configuration that clients
/// such as `perf_analyzer` read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelConfig {
    pub name: String,
    pub platform: String,
    pub backend: String,
    /// Most rows one request may carry.
    pub max_batch_size: u32,
    pub input: Vec<ConfigTensor>,
    pub output: Vec<ConfigTensor>,
}

/// One input tensor of an inference request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestInput {
    pub name: String,
    pub shape: Vec<i64>,
    pub datatype: String,
    /// `binary_data_size`: the tensor's bytes follow the JSON header (binary extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub parameters: Option<Map<String, Value>>,
    /// The elements in row-major order (nested or flat); for BYTES, base64 strings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>, nullable = false)]
    pub data: Option<Value>,
}

/// One output an inference request asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RequestOutput {
    pub name: String,
    /// `binary_data` (bool) and `classification` (the number of classes, best first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub parameters: Option<Map<String, Value>>,
}

/// `POST /v2/models/{model}/infer`: the JSON body, or the JSON header of a binary body
/// (`Inference-Header-Content-Length` bytes, then the tensors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InferRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub id: Option<String>,
    /// `binary_data_output`: every output in binary form unless it says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub parameters: Option<Map<String, Value>>,
    pub inputs: Vec<RequestInput>,
    /// What to answer; every output when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub outputs: Option<Vec<RequestOutput>>,
}

/// One output tensor of an answer. It has `parameters` only in binary form
/// (`binary_data_size`), and `data` only in JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResponseOutput {
    pub name: String,
    pub datatype: String,
    pub shape: Vec<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub parameters: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>, nullable = false)]
    pub data: Option<Value>,
}

/// The answer of an inference request (or its JSON header, when an output is binary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InferResponse {
    pub model_name: String,
    pub model_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub id: Option<String>,
    pub outputs: Vec<ResponseOutput>,
}

/// An answer with a binary output: the [`InferResponse`] JSON (`Inference-Header-Content-Length`
/// bytes), then each binary output's bytes in the order of `outputs`.
#[derive(Debug, Clone, PartialEq, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct BinaryInferResponse(pub Vec<u8>);
