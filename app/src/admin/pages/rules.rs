//! `/admin/rules`: the account's rules in the order they apply, with what each applies to and does; enabling,
//! moving up and down, deleting; and the editor (`rule_editor`) for a new rule or a saved one.

use leptos::prelude::*;
use leptos_meta::Title;
use serde_json::Value;

use super::rule_editor::{Editing, RuleEditor};
use super::{failure, Failure};
use crate::access::Role;
use crate::admin::{AdminShell, CurrentVisitor, Refresh};
use crate::components::ErrorNote;
use crate::outbound::api::{list_rules, CreateRule, DeleteRule, ReorderRules, UpdateRule};
use crate::outbound::model::{RuleForm, RuleView};

#[component]
pub fn RulesPage() -> impl IntoView {
    view! {
        <Title text="Rules · SM8 Webhooks"/>
        <AdminShell>
            <Rules/>
        </AdminShell>
    }
}

/// What can be done to rules; the list refetches after each.
#[derive(Clone, Copy)]
struct RuleActions {
    create: ServerAction<CreateRule>,
    /// Saving from the editor.
    update: ServerAction<UpdateRule>,
    /// Enabling or disabling from the list.
    toggle: ServerAction<UpdateRule>,
    delete: ServerAction<DeleteRule>,
    reorder: ServerAction<ReorderRules>,
}

#[component]
fn Rules() -> impl IntoView {
    let refresh = expect_context::<Refresh>();
    let visitor = expect_context::<CurrentVisitor>();
    let admin = untrack(move || visitor.may(Role::Admin));
    let actions = RuleActions {
        create: ServerAction::new(),
        update: ServerAction::new(),
        toggle: ServerAction::new(),
        delete: ServerAction::new(),
        reorder: ServerAction::new(),
    };
    let rules = Resource::new(
        move || {
            (
                refresh.get(),
                actions.create.version().get(),
                actions.update.version().get(),
                actions.toggle.version().get(),
                actions.delete.version().get(),
                actions.reorder.version().get(),
            )
        },
        |_| list_rules(),
    );
    // Kept apart from the list, so that a refresh does not reset the editor or a confirmation.
    let editing = RwSignal::new(None::<Editing>);
    let confirming = RwSignal::new(None::<String>);
    let saved = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        let created = actions.create.value().get().and_then(Result::ok);
        let updated = actions.update.value().get().and_then(Result::ok);
        if let Some(rule) = created.or(updated) {
            editing.set(None);
            saved.set(Some(rule.name));
        }
    });
    let open = move |chosen: Editing| {
        actions.create.value().set(None);
        actions.update.value().set(None);
        saved.set(None);
        editing.set(Some(chosen));
    };
    let editor = move || {
        editing.get().map(|chosen| {
            let (on_save, saving, error) = match &chosen {
                Editing::New => (
                    Callback::new(move |form| {
                        actions.create.dispatch(CreateRule { form });
                    }),
                    Signal::from(actions.create.pending()),
                    failure(actions.create),
                ),
                Editing::Rule(rule) => {
                    let id = rule.id.clone();
                    (
                        Callback::new(move |form| {
                            actions.update.dispatch(UpdateRule { id: id.clone(), form });
                        }),
                        Signal::from(actions.update.pending()),
                        failure(actions.update),
                    )
                }
            };
            view! {
                <RuleEditor editing=chosen on_save saving error on_close=Callback::new(move |()| editing.set(None))/>
            }
        })
    };
    view! {
        <section aria-labelledby="rules-title">
            <div class="section-head">
                <h2 id="rules-title">"Rules"</h2>
                {admin.then(|| view! {
                    <button type="button" on:click=move |_| open(Editing::New)>"New rule"</button>
                })}
            </div>
            <p class="muted">
                "Each event meets the enabled rules of its stage in this order: "<code>"received"</code>
                " before its record is fetched, "<code>"processed"</code>" once the record is mirrored. A rule \
                 whose types and filter match runs its actions: skip the event, or deliver a message to "
                <a href="/admin/destinations">"destinations"</a>"."
            </p>
            {move || saved.get().map(|name| view! { <p role="status">{format!("Saved rule “{name}”.")}</p> })}
            <Transition fallback=|| view! { <p class="muted">"Loading rules…"</p> }>
                {move || rules.get().map(|found| match found {
                    Ok(list) => view! {
                        <RulesTable list admin actions confirming open=Callback::new(open)/>
                    }.into_any(),
                    Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                })}
            </Transition>
            <Failure error=failure(actions.toggle)/>
            <Failure error=failure(actions.reorder)/>
            <Failure error=failure(actions.delete)/>
        </section>
        {editor}
    }
}

#[component]
fn RulesTable(
    list: Vec<RuleView>,
    admin: bool,
    actions: RuleActions,
    confirming: RwSignal<Option<String>>,
    /// Opens the editor.
    open: Callback<Editing>,
) -> impl IntoView {
    if list.is_empty() {
        let message = if admin {
            "No rules yet: every event is processed, and nothing is sent anywhere. Add one with “New rule”."
        } else {
            "No rules yet: every event is processed, and nothing is sent anywhere."
        };
        return view! { <p class="empty">{message}</p> }.into_any();
    }
    let order: Vec<String> = list.iter().map(|rule| rule.id.clone()).collect();
    let last = list.len() - 1;
    view! {
        <div class="table-wrap">
            <table class="rules">
                <thead>
                    <tr>
                        <th scope="col">"#"</th>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Stage"</th>
                        <th scope="col">"Applies to"</th>
                        <th scope="col">"Does"</th>
                        <th scope="col">"Enabled"</th>
                        {admin.then(|| view! { <th scope="col"><span class="sr-only">"Actions"</span></th> })}
                    </tr>
                </thead>
                <tbody>
                    {list.into_iter().enumerate().map(|(index, rule)| {
                        let enabled_cell = if admin {
                            let (id, definition, enabled) = (rule.id.clone(), rule.definition.clone(), rule.enabled);
                            view! {
                                <input type="checkbox" aria-label=format!("Enabled: {}", rule.name)
                                    prop:checked=enabled disabled=move || actions.toggle.pending().get()
                                    on:change=move |_| {
                                        actions.toggle.dispatch(UpdateRule {
                                            id: id.clone(),
                                            form: RuleForm { definition: definition.clone(), enabled: !enabled },
                                        });
                                    }/>
                            }.into_any()
                        } else {
                            (if rule.enabled { "yes" } else { "no" }).into_any()
                        };
                        let controls = admin.then(|| {
                            let moved = |to: usize| {
                                let mut ids = order.clone();
                                ids.swap(index, to);
                                ids
                            };
                            let up = (index > 0).then(|| moved(index - 1));
                            let down = (index < last).then(|| moved(index + 1));
                            view! {
                                <td><RuleControls rule=rule.clone() up down actions confirming open/></td>
                            }
                        });
                        view! {
                            <tr data-rule-id=rule.id.clone() class:disabled=!rule.enabled>
                                <td>{rule.position}</td>
                                <td>{rule.name.clone()}</td>
                                <td><span class=format!("badge stage-{}", rule.stage)>{rule.stage.clone()}</span></td>
                                <td>{applies_to(&rule.definition)}</td>
                                <td class="mono">{actions_summary(&rule.definition)}</td>
                                <td>{enabled_cell}</td>
                                {controls}
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

/// A rule's buttons: move up and down (`up`, `down`: the order after the move), edit, delete with confirmation.
#[component]
fn RuleControls(
    rule: RuleView,
    up: Option<Vec<String>>,
    down: Option<Vec<String>>,
    actions: RuleActions,
    confirming: RwSignal<Option<String>>,
    open: Callback<Editing>,
) -> impl IntoView {
    let reorder = actions.reorder;
    let delete = actions.delete;
    let id = rule.id.clone();
    let name = rule.name.clone();
    let move_button = move |ids: Option<Vec<String>>, symbol: &'static str, direction: &'static str| {
        let label = format!("Move {name} {direction}");
        let enabled = ids.is_some();
        view! {
            <button type="button" class="secondary icon" aria-label=label
                disabled=move || !enabled || reorder.pending().get()
                on:click=move |_| {
                    if let Some(ids) = ids.clone() {
                        reorder.dispatch(ReorderRules { ids });
                    }
                }>
                {symbol}
            </button>
        }
    };
    let buttons = view! {
        {move_button(up, "↑", "up")}
        {move_button(down, "↓", "down")}
    };
    let confirm_id = id.clone();
    let delete_id = id.clone();
    let name = rule.name.clone();
    let edited = rule.clone();
    view! {
        <div class="row-actions">
            {buttons}
            <button type="button" class="secondary" aria-label=format!("Edit {name}")
                on:click=move |_| open.run(Editing::Rule(edited.clone()))>
                "Edit"
            </button>
            {move || {
                if confirming.get().as_deref() == Some(confirm_id.as_str()) {
                    let id = delete_id.clone();
                    view! {
                        <span class="confirm-inline" role="group" aria-label=format!("Delete {name}?")>
                            <span>"Delete?"</span>
                            <button type="button" class="danger" disabled=move || delete.pending().get()
                                on:click=move |_| { delete.dispatch(DeleteRule { id: id.clone() }); }>
                                "Delete rule"
                            </button>
                            <button type="button" class="secondary" on:click=move |_| confirming.set(None)>"Cancel"</button>
                        </span>
                    }
                    .into_any()
                } else {
                    let id = delete_id.clone();
                    view! {
                        <button type="button" class="secondary danger-text" aria-label=format!("Delete {name}")
                            on:click=move |_| confirming.set(Some(id.clone()))>
                            "Delete"
                        </button>
                    }
                    .into_any()
                }
            }}
        </div>
    }
}

/// The types a rule applies to, in a few words.
fn applies_to(definition: &Value) -> String {
    let names = |key: &str| -> Vec<String> {
        definition["when"][key]
            .as_array()
            .map(|names| names.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let (objects, events) = (names("object_types"), names("event_types"));
    match (objects.is_empty(), events.is_empty()) {
        (true, true) => "every event".into(),
        (false, true) => objects.join(", "),
        (true, false) => format!("any object · {}", events.join(", ")),
        (false, false) => format!("{} · {}", objects.join(", "), events.join(", ")),
    }
}

/// What a rule's actions do, in a few words: `deliver → erp, office-slack`, `skip`.
fn actions_summary(definition: &Value) -> String {
    let Some(actions) = definition["actions"].as_array() else {
        return String::new();
    };
    actions
        .iter()
        .map(|action| match action["type"].as_str() {
            Some("deliver") => {
                let to: Vec<&str> = action["destinations"]
                    .as_array()
                    .map(|names| names.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let templated = if action.get("template").is_some() {
                    " (template)"
                } else {
                    ""
                };
                format!("deliver → {}{templated}", to.join(", "))
            }
            Some(kind) => kind.to_owned(),
            None => "?".to_owned(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_rule_is_summed_up_by_its_types_and_its_actions() {
        let rule = json!({"when": {"stage": "processed", "object_types": ["job"], "event_types": ["quote_accepted"]},
                          "actions": [{"type": "deliver", "destinations": ["erp", "office"]},
                                      {"type": "deliver", "destinations": ["slack"], "template": {"text": "x"}}]});
        assert_eq!(applies_to(&rule), "job · quote_accepted");
        assert_eq!(
            actions_summary(&rule),
            "deliver → erp, office; deliver → slack (template)"
        );

        let skip = json!({"when": {"stage": "received"}, "actions": [{"type": "skip"}]});
        assert_eq!(applies_to(&skip), "every event");
        assert_eq!(actions_summary(&skip), "skip");
    }
}
