//! The output table: which columns a run writes (from what it scores), and insights turned into Arrow arrays.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, Float32Builder, Float64Builder, Int64Builder, ListBuilder, StringBuilder,
    StructBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

use super::BatchError;
use crate::engagement::insights::Insight;
use crate::model::spec::RiskBand;
use crate::snapshot::CustomerId;

/// The Arrow type of the `customer_id` column, following the snapshot's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum IdType {
    /// Strings.
    Str,
    /// Signed integers.
    Int,
    /// Unsigned 64-bit integers.
    UInt,
}

impl IdType {
    /// The id type of a snapshot whose `customer_id` column has type `t`.
    pub fn of(t: &DataType) -> IdType {
        match t {
            DataType::UInt64 => IdType::UInt,
            t if t.is_integer() => IdType::Int,
            _ => IdType::Str,
        }
    }
}

/// What a run writes, column group by column group.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Type of `customer_id`.
    pub ids: IdType,
    /// `churn_probability`, `risk`.
    pub churn: bool,
    /// `reasons` (list of name, value, contribution, direction).
    pub reasons: bool,
    /// `segment`, `segment_name`.
    pub segment: bool,
    /// `offers` (list of item_id, score).
    pub offers: bool,
    /// `next_action`, `channel`, `priority`, `rule`, `expected_value`.
    pub action: bool,
    /// `error` (why a customer has no answer: a model that rejects missing values).
    pub error: bool,
}

fn reason_fields() -> Fields {
    Fields::from(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("value", DataType::Float32, true),
        Field::new("contribution", DataType::Float32, false),
        Field::new("direction", DataType::Utf8, false),
    ])
}

fn offer_fields() -> Fields {
    Fields::from(vec![
        Field::new("item_id", DataType::Utf8, false),
        Field::new("score", DataType::Float32, false),
    ])
}

fn list_of(fields: Fields) -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Struct(fields), true)))
}

impl Layout {
    /// The output schema.
    pub fn schema(&self) -> SchemaRef {
        let id = match self.ids {
            IdType::Str => DataType::Utf8,
            IdType::Int => DataType::Int64,
            IdType::UInt => DataType::UInt64,
        };
        let mut fields = vec![Field::new("customer_id", id, false)];
        if self.churn {
            fields.push(Field::new("churn_probability", DataType::Float32, true));
            fields.push(Field::new("risk", DataType::Utf8, true));
        }
        if self.reasons {
            fields.push(Field::new("reasons", list_of(reason_fields()), true));
        }
        if self.segment {
            fields.push(Field::new("segment", DataType::Utf8, true));
            fields.push(Field::new("segment_name", DataType::Utf8, true));
        }
        if self.offers {
            fields.push(Field::new("offers", list_of(offer_fields()), true));
        }
        if self.action {
            fields.push(Field::new("next_action", DataType::Utf8, true));
            fields.push(Field::new("channel", DataType::Utf8, true));
            fields.push(Field::new("priority", DataType::UInt32, true));
            fields.push(Field::new("rule", DataType::Utf8, true));
            fields.push(Field::new("expected_value", DataType::Float64, true));
        }
        if self.error {
            fields.push(Field::new("error", DataType::Utf8, true));
        }
        Arc::new(Schema::new(fields))
    }

    /// One record batch of `insights`, in order.
    pub fn batch(&self, insights: &[Insight]) -> Result<RecordBatch, BatchError> {
        let n = insights.len();
        let mut columns: Vec<ArrayRef> = vec![self.ids(insights)?];
        if self.churn {
            let churn = || insights.iter().map(|i| i.churn.as_ref());
            columns.push(Arc::new(
                churn()
                    .map(|c| c.map(|c| c.probability))
                    .collect::<arrow_array::Float32Array>(),
            ));
            let mut risk = StringBuilder::with_capacity(n, n * 6);
            for c in churn() {
                risk.append_option(c.and_then(|c| c.risk).map(RiskBand::as_str));
            }
            columns.push(Arc::new(risk.finish()));
        }
        if self.reasons {
            let mut list = ListBuilder::new(StructBuilder::from_fields(reason_fields(), n * 3))
                .with_field(Field::new("item", DataType::Struct(reason_fields()), true));
            for insight in insights {
                let Some(churn) = &insight.churn else {
                    list.append(false);
                    continue;
                };
                let s = list.values();
                for r in &churn.reasons {
                    field::<StringBuilder>(s, 0).append_value(&r.name);
                    field::<Float32Builder>(s, 1).append_option(r.value);
                    field::<Float32Builder>(s, 2).append_value(r.contribution);
                    field::<StringBuilder>(s, 3).append_value(r.direction);
                    s.append(true);
                }
                list.append(true);
            }
            columns.push(Arc::new(list.finish()));
        }
        if self.segment {
            let segment = || insights.iter().map(|i| i.segment.as_ref());
            columns.push(Arc::new(
                segment()
                    .map(|s| s.map(|s| s.key.as_str()))
                    .collect::<arrow_array::StringArray>(),
            ));
            columns.push(Arc::new(
                segment()
                    .map(|s| s.map(|s| s.name.as_str()))
                    .collect::<arrow_array::StringArray>(),
            ));
        }
        if self.offers {
            let mut list = ListBuilder::new(StructBuilder::from_fields(offer_fields(), n * 3))
                .with_field(Field::new("item", DataType::Struct(offer_fields()), true));
            for insight in insights {
                let Some(offers) = &insight.offers else {
                    list.append(false);
                    continue;
                };
                let s = list.values();
                for o in offers {
                    field::<StringBuilder>(s, 0).append_value(&o.item.item_id);
                    field::<Float32Builder>(s, 1).append_value(o.score);
                    s.append(true);
                }
                list.append(true);
            }
            columns.push(Arc::new(list.finish()));
        }
        if self.action {
            let action = || insights.iter().map(|i| i.next_best_action.as_ref());
            columns.push(Arc::new(
                action()
                    .map(|a| a.map(|a| a.action.as_str()))
                    .collect::<arrow_array::StringArray>(),
            ));
            columns.push(Arc::new(
                action()
                    .map(|a| a.map(|a| a.channel.as_str()))
                    .collect::<arrow_array::StringArray>(),
            ));
            let mut priority = UInt32Builder::with_capacity(n);
            let mut value = Float64Builder::with_capacity(n);
            for a in action() {
                priority.append_option(a.map(|a| a.priority));
                value.append_option(a.and_then(|a| a.expected_value));
            }
            columns.push(Arc::new(priority.finish()));
            columns.push(Arc::new(
                action()
                    .map(|a| a.map(|a| a.rule.as_str()))
                    .collect::<arrow_array::StringArray>(),
            ));
            columns.push(Arc::new(value.finish()));
        }
        if self.error {
            columns.push(Arc::new(
                insights
                    .iter()
                    .map(|i| i.error.as_ref().map(|e| e.message.as_str()))
                    .collect::<arrow_array::StringArray>(),
            ));
        }
        RecordBatch::try_new(self.schema(), columns)
            .map_err(|e| BatchError::Invalid(format!("cannot build the output table: {e}")))
    }

    fn ids(&self, insights: &[Insight]) -> Result<ArrayRef, BatchError> {
        let n = insights.len();
        let ids = insights.iter().map(|i| &i.customer_id);
        let mixed = |id: &CustomerId| {
            BatchError::Invalid(format!(
                "customer_id '{id}' does not fit the output's {:?} id column (the part files disagree on the \
                 id type)",
                self.ids
            ))
        };
        Ok(match self.ids {
            IdType::Str => {
                let mut b = StringBuilder::with_capacity(n, n * 12);
                for id in ids {
                    match id {
                        CustomerId::Str(s) => b.append_value(s),
                        other => b.append_value(other.to_string()),
                    }
                }
                Arc::new(b.finish())
            }
            IdType::Int => {
                let mut b = Int64Builder::with_capacity(n);
                for id in ids {
                    match id {
                        CustomerId::Int(v) => b.append_value(*v),
                        other => return Err(mixed(other)),
                    }
                }
                Arc::new(b.finish())
            }
            IdType::UInt => {
                let mut b = UInt64Builder::with_capacity(n);
                for id in ids {
                    match id {
                        CustomerId::UInt(v) => b.append_value(*v),
                        CustomerId::Int(v) if *v >= 0 => b.append_value(*v as u64),
                        other => return Err(mixed(other)),
                    }
                }
                Arc::new(b.finish())
            }
        })
    }
}

/// Field builder `i` of a struct builder whose fields this module declared.
fn field<T: ArrayBuilder>(s: &mut StructBuilder, i: usize) -> &mut T {
    s.field_builder::<T>(i)
        .expect("the struct builder was made from this module's own fields")
}
