//! Schemas of the wire types whose JSON form is written by hand (custom serde impls): the document says what
//! those impls accept and write.

use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::api::dto::{ExplainDepth, TensorData};
use crate::snapshot::CustomerId;

fn typed(t: Type) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(t)
}

impl PartialSchema for CustomerId {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(typed(Type::String))
            .item(typed(Type::Integer))
            .description(Some(
                "A customer id: a string or an integer, echoed back as given",
            ))
            .into()
    }
}

impl ToSchema for CustomerId {}

impl PartialSchema for ExplainDepth {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(typed(Type::Integer).minimum(Some(1)))
            .item(typed(Type::String).enum_values(Some(["all"])))
            .description(Some(
                "How many reasons per result: the K largest contributions, or \"all\"",
            ))
            .into()
    }
}

impl ToSchema for ExplainDepth {}

impl PartialSchema for TensorData {
    fn schema() -> RefOr<Schema> {
        // Nested arrays of any depth (up to 8): each element a number, null (a missing value), a string, or an
        // array of them.
        let element = OneOfBuilder::new()
            .item(typed(Type::Number))
            .item(typed(Type::Null))
            .item(typed(Type::String))
            .item(typed(Type::Array));
        ArrayBuilder::new()
            .items(element)
            .description(Some(
                "Row-major tensor values, flat or nested: numbers (null for a missing value), or strings for BYTES",
            ))
            .into()
    }
}

impl ToSchema for TensorData {}
