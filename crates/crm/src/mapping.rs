//! Field mapping: which field of a script goes to which field of the CRM's contact.
//!
//! A mapping is edited in settings, one per script, and checked against the CRM's own
//! field list ([`validate`]): the CRM field must exist, accept the script field's type,
//! and each CRM field may be filled from one script field only. At delivery the values are
//! converted to what the CRM field takes ([`convert`]): a choice becomes the CRM's option
//! id, a date the CRM's date form, and so on.

use std::collections::{BTreeMap, BTreeSet};

use callhelper_script::{FieldType, Script, Text, Timestamp, Value, text};
use serde::{Deserialize, Serialize};

/// What kind of values a CRM field takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CrmFieldKind {
    /// Text.
    Text,
    /// A number.
    Number,
    /// A date (and maybe a time).
    Date,
    /// Yes or no.
    Bool,
    /// One of a list of options.
    Select,
    /// Several of a list of options.
    MultiSelect,
    /// Phone numbers or e-mails (several, typed).
    Contacts,
    /// Something we do not write to.
    Other(String),
}

/// One field of the CRM's contact, as the CRM lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrmField {
    /// Its id in the CRM (amoCRM: the number; Bitrix24: `UF_CRM_...` or `COMMENTS`;
    /// webhook: the JSON key).
    pub id: String,
    /// Its name for people.
    pub name: String,
    /// What it takes.
    pub kind: CrmFieldKind,
    /// The options of a select: (the CRM's option id, its label).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<(String, String)>,
}

/// One script field going to one CRM field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldRule {
    /// The script field's id.
    pub field: String,
    /// The CRM field's id.
    pub crm_field: String,
}

/// The mapping of one script.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldMap {
    /// The rules.
    pub rules: Vec<FieldRule>,
}

/// The mappings of all scripts, by script id.
pub type Mappings = BTreeMap<String, FieldMap>;

/// A problem with a mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MappingProblem {
    /// The CRM has no such field.
    UnknownCrmField {
        /// The script field.
        field: String,
        /// The CRM field asked for.
        crm_field: String,
    },
    /// The script has no such field.
    UnknownScriptField {
        /// The field.
        field: String,
    },
    /// The CRM field cannot take the script field's values.
    TypeMismatch {
        /// The script field.
        field: String,
        /// Its type.
        field_type: String,
        /// The CRM field.
        crm_field: String,
        /// What it takes.
        crm_kind: String,
    },
    /// A script choice has an option the CRM's select does not.
    MissingOption {
        /// The script field.
        field: String,
        /// The CRM field.
        crm_field: String,
        /// The option the CRM lacks.
        option: String,
    },
    /// Two script fields go to the same CRM field.
    DuplicateTarget {
        /// The CRM field.
        crm_field: String,
    },
}

impl MappingProblem {
    /// What is wrong and what to do.
    pub fn message(&self) -> Text {
        match self {
            MappingProblem::UnknownCrmField { field, crm_field } => text!(
                "field \"{field}\" goes to CRM field \"{crm_field}\", which the CRM does not have; pick one from the CRM's field list";
                "поле «{field}» сопоставлено полю CRM «{crm_field}», которого в CRM нет; выберите поле из списка полей CRM"),
            MappingProblem::UnknownScriptField { field } => text!(
                "the script has no field \"{field}\"; remove the rule or fix the field's id";
                "в сценарии нет поля «{field}»; удалите правило или исправьте идентификатор поля"),
            MappingProblem::TypeMismatch {
                field,
                field_type,
                crm_field,
                crm_kind,
            } => text!(
                "field \"{field}\" ({field_type}) cannot go to CRM field \"{crm_field}\" ({crm_kind}); pick a CRM field of a matching type";
                "поле «{field}» ({field_type}) нельзя записать в поле CRM «{crm_field}» ({crm_kind}); выберите поле CRM подходящего типа"),
            MappingProblem::MissingOption {
                field,
                crm_field,
                option,
            } => text!(
                "option \"{option}\" of field \"{field}\" is not among the options of CRM field \"{crm_field}\"; add it in the CRM or change the script";
                "варианта «{option}» поля «{field}» нет среди вариантов поля CRM «{crm_field}»; добавьте его в CRM или измените сценарий"),
            MappingProblem::DuplicateTarget { crm_field } => text!(
                "several fields go to CRM field \"{crm_field}\"; keep one";
                "в поле CRM «{crm_field}» записываются несколько полей; оставьте одно"),
        }
    }
}

fn kind_name(k: &CrmFieldKind) -> String {
    match k {
        CrmFieldKind::Text => "text".into(),
        CrmFieldKind::Number => "number".into(),
        CrmFieldKind::Date => "date".into(),
        CrmFieldKind::Bool => "yes/no".into(),
        CrmFieldKind::Select => "select".into(),
        CrmFieldKind::MultiSelect => "multiselect".into(),
        CrmFieldKind::Contacts => "phones/e-mails".into(),
        CrmFieldKind::Other(s) => s.clone(),
    }
}

fn compatible(t: FieldType, k: &CrmFieldKind) -> bool {
    use CrmFieldKind as K;
    match k {
        K::Text => true,
        K::Number => t == FieldType::Number,
        K::Date => matches!(t, FieldType::Date | FieldType::Datetime),
        K::Bool => t == FieldType::Boolean,
        K::Select => t == FieldType::Choice,
        K::MultiSelect => t.has_options(),
        K::Contacts | K::Other(_) => false,
    }
}

fn find_option<'a>(field: &'a CrmField, v: &str) -> Option<&'a (String, String)> {
    field
        .options
        .iter()
        .find(|(id, label)| id == v || label.eq_ignore_ascii_case(v))
}

/// Check a script's mapping against the CRM's fields (and the script, when given).
pub fn validate(map: &FieldMap, crm: &[CrmField], script: Option<&Script>) -> Vec<MappingProblem> {
    let mut out = Vec::new();
    let mut targets = BTreeSet::new();
    for r in &map.rules {
        if !targets.insert(r.crm_field.as_str()) {
            out.push(MappingProblem::DuplicateTarget {
                crm_field: r.crm_field.clone(),
            });
        }
        let Some(cf) = crm.iter().find(|f| f.id == r.crm_field) else {
            out.push(MappingProblem::UnknownCrmField {
                field: r.field.clone(),
                crm_field: r.crm_field.clone(),
            });
            continue;
        };
        let Some(script) = script else { continue };
        let Some(sf) = script.fields.iter().find(|f| f.id == r.field) else {
            out.push(MappingProblem::UnknownScriptField {
                field: r.field.clone(),
            });
            continue;
        };
        if !compatible(sf.kind, &cf.kind) {
            out.push(MappingProblem::TypeMismatch {
                field: r.field.clone(),
                field_type: sf.kind.as_str().into(),
                crm_field: cf.name.clone(),
                crm_kind: kind_name(&cf.kind),
            });
            continue;
        }
        if matches!(cf.kind, CrmFieldKind::Select | CrmFieldKind::MultiSelect) {
            for o in &sf.options {
                if find_option(cf, o.value()).is_none() && find_option(cf, o.label()).is_none() {
                    out.push(MappingProblem::MissingOption {
                        field: r.field.clone(),
                        crm_field: cf.name.clone(),
                        option: o.value().into(),
                    });
                }
            }
        }
    }
    out
}

/// A value converted for a CRM field.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Converted {
    /// Text.
    Text(String),
    /// A number.
    Number(f64),
    /// Yes or no.
    Bool(bool),
    /// A point in time.
    Date(Timestamp),
    /// One option, by the CRM's id.
    Option(String),
    /// Several options, by the CRM's ids.
    Options(Vec<String>),
}

/// Convert a script value for a CRM field; the error says why it does not fit (without
/// quoting the value, which may be personal data).
pub fn convert(v: &Value, field: &CrmField, utc_offset_min: i32) -> Result<Converted, Text> {
    let name = &field.name;
    let unfit = || {
        text!("a value does not fit CRM field \"{name}\" ({})", kind_name(&field.kind);
              "значение не подходит для поля CRM «{name}» ({})", kind_name(&field.kind))
    };
    Ok(match (&field.kind, v) {
        (CrmFieldKind::Text, v) => Converted::Text(v.display(callhelper_script::Lang::Ru)),
        (CrmFieldKind::Number, Value::Number(n)) => Converted::Number(*n),
        (CrmFieldKind::Number, Value::Text(t)) => {
            Converted::Number(t.trim().replace(',', ".").parse().map_err(|_| unfit())?)
        }
        (CrmFieldKind::Bool, Value::Bool(b)) => Converted::Bool(*b),
        (CrmFieldKind::Date, Value::Text(t)) => {
            Converted::Date(crate::time::parse_iso(t, utc_offset_min, 0).ok_or_else(unfit)?)
        }
        (CrmFieldKind::Select, Value::Text(t)) => {
            Converted::Option(find_option(field, t).ok_or_else(unfit)?.0.clone())
        }
        (CrmFieldKind::MultiSelect, Value::List(items)) => Converted::Options(
            items
                .iter()
                .map(|t| find_option(field, t).map(|o| o.0.clone()).ok_or_else(unfit))
                .collect::<Result<_, _>>()?,
        ),
        (CrmFieldKind::MultiSelect, Value::Text(t)) => {
            Converted::Options(vec![find_option(field, t).ok_or_else(unfit)?.0.clone()])
        }
        _ => return Err(unfit()),
    })
}

/// The converted values of a run for its script's mapping: (CRM field, value). Rules whose
/// field the run did not fill are skipped; a rule naming a field the CRM lacks, or a value
/// that does not fit, is an error.
pub fn mapped_values<'a>(
    fields: &BTreeMap<String, Value>,
    map: &FieldMap,
    crm: &'a [CrmField],
    utc_offset_min: i32,
) -> Result<Vec<(&'a CrmField, Converted)>, Text> {
    let mut out = Vec::new();
    for r in &map.rules {
        let Some(v) = fields.get(&r.field) else {
            continue;
        };
        let Some(cf) = crm.iter().find(|f| f.id == r.crm_field) else {
            return Err(MappingProblem::UnknownCrmField {
                field: r.field.clone(),
                crm_field: r.crm_field.clone(),
            }
            .message());
        };
        out.push((cf, convert(v, cf, utc_offset_min)?));
    }
    Ok(out)
}
