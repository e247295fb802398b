//! The subset of onnx.proto3 that explaining needs, hand-written as prost messages (tags checked against onnx.proto).
//!
//! Only the fields read here are declared; prost skips every other field without keeping it. Byte fields are
//! [`Bytes`]: decoded from a `Bytes` buffer (a file read whole) they are slices of it, so a large graph's weights
//! (initializers' raw_data) are never copied; decoded from a plain slice they are copied once.

use prost::Message;
use prost::bytes::Bytes;

/// `TensorProto.DataType` values used here.
pub mod data_type {
    /// float32.
    pub const FLOAT: i32 = 1;
    /// uint8 (the opset-5 TreeEnsemble `nodes_modes`).
    pub const UINT8: i32 = 2;
    /// int32.
    pub const INT32: i32 = 6;
    /// int64.
    pub const INT64: i32 = 7;
    /// float64.
    pub const DOUBLE: i32 = 11;
}

/// ModelProto: the file's top-level message.
#[derive(Clone, PartialEq, Message)]
pub struct ModelProto {
    /// The graph (field 7).
    #[prost(message, optional, tag = "7")]
    pub graph: Option<GraphProto>,
    /// Operator sets the graph binds against (field 8).
    #[prost(message, repeated, tag = "8")]
    pub opset_import: Vec<OperatorSetIdProto>,
}

/// OperatorSetIdProto: one imported operator set.
#[derive(Clone, PartialEq, Message)]
pub struct OperatorSetIdProto {
    /// Domain; empty means the default "ai.onnx".
    #[prost(string, tag = "1")]
    pub domain: String,
    /// Version of that domain.
    #[prost(int64, tag = "2")]
    pub version: i64,
}

/// GraphProto: nodes, constant tensors (by name only) and the graph's inputs and outputs.
#[derive(Clone, PartialEq, Message)]
pub struct GraphProto {
    /// Nodes in topological order.
    #[prost(message, repeated, tag = "1")]
    pub node: Vec<NodeProto>,
    /// Graph name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// Constant tensors; older IR versions also list them among the inputs.
    #[prost(message, repeated, tag = "5")]
    pub initializer: Vec<TensorProto>,
    /// Graph inputs.
    #[prost(message, repeated, tag = "11")]
    pub input: Vec<ValueInfoProto>,
    /// Graph outputs.
    #[prost(message, repeated, tag = "12")]
    pub output: Vec<ValueInfoProto>,
}

/// NodeProto: one operator application.
#[derive(Clone, PartialEq, Message)]
pub struct NodeProto {
    /// Input value names.
    #[prost(string, repeated, tag = "1")]
    pub input: Vec<String>,
    /// Output value names.
    #[prost(string, repeated, tag = "2")]
    pub output: Vec<String>,
    /// Node name (optional in ONNX).
    #[prost(string, tag = "3")]
    pub name: String,
    /// Operator name, e.g. "TreeEnsembleClassifier".
    #[prost(string, tag = "4")]
    pub op_type: String,
    /// Attributes.
    #[prost(message, repeated, tag = "5")]
    pub attribute: Vec<AttributeProto>,
    /// Operator domain; empty means "ai.onnx".
    #[prost(string, tag = "7")]
    pub domain: String,
}

/// AttributeProto: one named attribute of a node.
#[derive(Clone, PartialEq, Message)]
pub struct AttributeProto {
    /// Attribute name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// FLOAT value.
    #[prost(float, tag = "2")]
    pub f: f32,
    /// INT value.
    #[prost(int64, tag = "3")]
    pub i: i64,
    /// STRING value (bytes in ONNX).
    #[prost(bytes = "bytes", tag = "4")]
    pub s: Bytes,
    /// TENSOR value.
    #[prost(message, optional, tag = "5")]
    pub t: Option<TensorProto>,
    /// FLOATS value.
    #[prost(float, repeated, tag = "7")]
    pub floats: Vec<f32>,
    /// INTS value.
    #[prost(int64, repeated, tag = "8")]
    pub ints: Vec<i64>,
    /// STRINGS value.
    #[prost(bytes = "bytes", repeated, tag = "9")]
    pub strings: Vec<Bytes>,
    /// Which of the value fields is set (AttributeProto.AttributeType).
    #[prost(int32, tag = "20")]
    pub r#type: i32,
}

/// TensorProto: a constant tensor (an initializer, or a tensor-valued attribute of the opset-5 TreeEnsemble).
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    /// Shape.
    #[prost(int64, repeated, tag = "1")]
    pub dims: Vec<i64>,
    /// Element type (see [`data_type`]).
    #[prost(int32, tag = "2")]
    pub data_type: i32,
    /// float32 elements.
    #[prost(float, repeated, tag = "4")]
    pub float_data: Vec<f32>,
    /// int32, uint8, int8, uint16, int16 and bool elements, one per int32.
    #[prost(int32, repeated, tag = "5")]
    pub int32_data: Vec<i32>,
    /// int64 elements.
    #[prost(int64, repeated, tag = "7")]
    pub int64_data: Vec<i64>,
    /// Tensor name.
    #[prost(string, tag = "8")]
    pub name: String,
    /// Little-endian packed elements, used instead of the typed fields by most exporters.
    #[prost(bytes = "bytes", tag = "9")]
    pub raw_data: Bytes,
    /// float64 elements.
    #[prost(double, repeated, tag = "10")]
    pub double_data: Vec<f64>,
}

/// ValueInfoProto: a graph input or output.
#[derive(Clone, PartialEq, Message)]
pub struct ValueInfoProto {
    /// Value name.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Value type.
    #[prost(message, optional, tag = "2")]
    pub r#type: Option<TypeProto>,
}

/// TypeProto, tensor case only (field 1 of the `value` oneof).
#[derive(Clone, PartialEq, Message)]
pub struct TypeProto {
    /// The tensor type; absent for sequences and maps.
    #[prost(message, optional, tag = "1")]
    pub tensor_type: Option<TensorTypeProto>,
}

/// TypeProto.Tensor: element type (the shape is not needed here).
#[derive(Clone, PartialEq, Message)]
pub struct TensorTypeProto {
    /// Element type (see [`data_type`]).
    #[prost(int32, tag = "1")]
    pub elem_type: i32,
}

impl ValueInfoProto {
    /// The tensor element type, when the value is a tensor with a declared type.
    pub fn elem_type(&self) -> Option<i32> {
        self.r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .map(|t| t.elem_type)
    }
}

impl NodeProto {
    /// The attribute called `name`, if the node has one.
    pub fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.attribute.iter().find(|a| a.name == name)
    }
}

impl TensorProto {
    /// Number of elements the dims declare (1 for a scalar).
    fn declared_len(&self) -> Option<usize> {
        self.dims.iter().try_fold(1usize, |n, &d| {
            usize::try_from(d).ok().and_then(|d| n.checked_mul(d))
        })
    }

    /// The elements as f64 (float, double, or integer tensors); None for other types or inconsistent data.
    pub fn to_f64(&self) -> Option<Vec<f64>> {
        let values: Vec<f64> = match self.data_type {
            data_type::FLOAT if !self.raw_data.is_empty() => le_chunks::<4>(&self.raw_data)?
                .map(|b| f64::from(f32::from_le_bytes(b)))
                .collect(),
            data_type::FLOAT => self.float_data.iter().map(|&v| f64::from(v)).collect(),
            data_type::DOUBLE if !self.raw_data.is_empty() => le_chunks::<8>(&self.raw_data)?
                .map(f64::from_le_bytes)
                .collect(),
            data_type::DOUBLE => self.double_data.clone(),
            _ => return None,
        };
        self.check_len(values)
    }

    /// The elements as i64 (uint8, int32 or int64 tensors); None for other types or inconsistent data.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        let values: Vec<i64> = match self.data_type {
            data_type::UINT8 if !self.raw_data.is_empty() => {
                self.raw_data.iter().map(|&b| i64::from(b)).collect()
            }
            data_type::UINT8 | data_type::INT32 if self.raw_data.is_empty() => {
                self.int32_data.iter().map(|&v| i64::from(v)).collect()
            }
            data_type::INT32 => le_chunks::<4>(&self.raw_data)?
                .map(|b| i64::from(i32::from_le_bytes(b)))
                .collect(),
            data_type::INT64 if !self.raw_data.is_empty() => le_chunks::<8>(&self.raw_data)?
                .map(i64::from_le_bytes)
                .collect(),
            data_type::INT64 => self.int64_data.clone(),
            _ => return None,
        };
        self.check_len(values)
    }

    /// Keeps `values` only when their count matches the declared dims (a tensor with external data has none).
    fn check_len<T>(&self, values: Vec<T>) -> Option<Vec<T>> {
        (Some(values.len()) == self.declared_len()).then_some(values)
    }
}

/// `raw` cut into N-byte little-endian chunks; None when its length is not a multiple of N.
fn le_chunks<const N: usize>(raw: &[u8]) -> Option<impl Iterator<Item = [u8; N]> + '_> {
    if !raw.len().is_multiple_of(N) {
        return None;
    }
    Some(
        raw.chunks_exact(N)
            .map(|c| <[u8; N]>::try_from(c).unwrap_or([0; N])),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_raw_and_typed_data_decode_alike() {
        let raw = TensorProto {
            dims: vec![3],
            data_type: data_type::FLOAT,
            raw_data: Bytes::from(
                [1.5f32, -2.0, 0.25]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect::<Vec<u8>>(),
            ),
            ..Default::default()
        };
        let typed = TensorProto {
            dims: vec![3],
            data_type: data_type::FLOAT,
            float_data: vec![1.5, -2.0, 0.25],
            ..Default::default()
        };
        assert_eq!(raw.to_f64(), Some(vec![1.5, -2.0, 0.25]));
        assert_eq!(typed.to_f64(), raw.to_f64());
        let modes = TensorProto {
            dims: vec![2],
            data_type: data_type::UINT8,
            raw_data: Bytes::from_static(&[0, 6]),
            ..Default::default()
        };
        assert_eq!(modes.to_i64(), Some(vec![0, 6]));
        let short = TensorProto {
            dims: vec![4],
            ..typed
        };
        assert_eq!(short.to_f64(), None, "element count must match dims");
    }

    #[test]
    fn initializer_data_shares_the_buffer_and_fields_round_trip() {
        let weights = TensorProto {
            dims: vec![1024],
            data_type: data_type::FLOAT,
            name: "w".into(),
            raw_data: Bytes::from(vec![7u8; 4096]),
            ..Default::default()
        };
        let model = ModelProto {
            graph: Some(GraphProto {
                initializer: vec![weights],
                ..Default::default()
            }),
            opset_import: vec![],
        };
        let file = Bytes::from(model.encode_to_vec());
        let decoded = ModelProto::decode(file.clone()).expect("decodes");
        let raw = &decoded.graph.as_ref().expect("graph").initializer[0].raw_data;
        let inside = file.as_ptr_range();
        assert!(
            inside.contains(&raw.as_ptr()),
            "raw_data is a slice of the file buffer, not a copy"
        );
        assert_eq!(raw.len(), 4096);
        let node = NodeProto {
            op_type: "Cast".into(),
            attribute: vec![AttributeProto {
                name: "to".into(),
                i: 1,
                r#type: 2,
                ..Default::default()
            }],
            ..Default::default()
        };
        let back = NodeProto::decode(node.encode_to_vec().as_slice()).expect("decodes");
        assert_eq!(back.attr("to").map(|a| a.i), Some(1));
    }
}
