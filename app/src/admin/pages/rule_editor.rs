//! The rule editor on `/admin/rules`: a rule's fields (name, stage, types, filter, transform, actions) or its raw
//! JSON, turned into the `definition` the server compiles and refuses with the place of a mistake; and "Test
//! against event", which tries the definition as edited, before it is saved, on a stored event.

use std::sync::atomic::{AtomicUsize, Ordering};

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use serde_json::Value;

use super::rule_fields::{pretty, ActionFields, RuleFields, STAGES};
use super::{failure, Failure};
use crate::components::{ErrorNote, JsonBlock};
use crate::error::AppError;
use crate::objects::OBJECTS;
use crate::outbound::api::{list_destinations, TestRule};
use crate::outbound::model::{ActionPreview, DestinationView, RuleForm, RuleTest, RuleView};

/// What the editor is open for.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Editing {
    New,
    Rule(RuleView),
}

/// Tells the action editors apart in a keyed list, however they are added and removed.
static NEXT_ACTION_KEY: AtomicUsize = AtomicUsize::new(0);

/// One action's fields as signals.
#[derive(Clone, Copy)]
struct ActionSignals {
    key: usize,
    kind: RwSignal<String>,
    destinations: RwSignal<Vec<String>>,
    subject: RwSignal<String>,
    text: RwSignal<String>,
    html: RwSignal<String>,
    blocks: RwSignal<String>,
}

impl ActionSignals {
    fn new(fields: ActionFields) -> Self {
        ActionSignals {
            key: NEXT_ACTION_KEY.fetch_add(1, Ordering::Relaxed),
            kind: RwSignal::new(fields.kind),
            destinations: RwSignal::new(fields.destinations),
            subject: RwSignal::new(fields.subject),
            text: RwSignal::new(fields.text),
            html: RwSignal::new(fields.html),
            blocks: RwSignal::new(fields.blocks),
        }
    }

    fn read(self) -> ActionFields {
        ActionFields {
            kind: self.kind.get_untracked(),
            destinations: self.destinations.get_untracked(),
            subject: self.subject.get_untracked(),
            text: self.text.get_untracked(),
            html: self.html.get_untracked(),
            blocks: self.blocks.get_untracked(),
        }
    }
}

/// The rule's fields as signals.
#[derive(Clone, Copy)]
struct RuleSignals {
    name: RwSignal<String>,
    stage: RwSignal<String>,
    object_types: RwSignal<Vec<String>>,
    event_types: RwSignal<String>,
    filter: RwSignal<String>,
    transform: RwSignal<String>,
    actions: RwSignal<Vec<ActionSignals>>,
}

impl RuleSignals {
    fn new(fields: RuleFields) -> Self {
        RuleSignals {
            name: RwSignal::new(fields.name),
            stage: RwSignal::new(fields.stage),
            object_types: RwSignal::new(fields.object_types),
            event_types: RwSignal::new(fields.event_types),
            filter: RwSignal::new(fields.filter),
            transform: RwSignal::new(fields.transform),
            actions: RwSignal::new(fields.actions.into_iter().map(ActionSignals::new).collect()),
        }
    }

    fn fill(self, fields: RuleFields) {
        self.name.set(fields.name);
        self.stage.set(fields.stage);
        self.object_types.set(fields.object_types);
        self.event_types.set(fields.event_types);
        self.filter.set(fields.filter);
        self.transform.set(fields.transform);
        self.actions
            .set(fields.actions.into_iter().map(ActionSignals::new).collect());
    }

    fn read(self) -> RuleFields {
        RuleFields {
            name: self.name.get_untracked(),
            stage: self.stage.get_untracked(),
            object_types: self.object_types.get_untracked(),
            event_types: self.event_types.get_untracked(),
            filter: self.filter.get_untracked(),
            transform: self.transform.get_untracked(),
            actions: self
                .actions
                .get_untracked()
                .into_iter()
                .map(ActionSignals::read)
                .collect(),
        }
    }
}

/// Runs `make` as a part of `owner`: signals made in an event handler then belong to the editor, and go when it
/// closes, like those made when it opened.
fn in_owner<T>(owner: &Option<Owner>, make: impl FnOnce() -> T) -> T {
    match owner {
        Some(owner) => owner.with(make),
        None => make(),
    }
}

type DestinationList = Resource<Result<Vec<DestinationView>, AppError>>;

/// A new rule or a saved one, as fields or as JSON, with its test. The page saves what `on_save` receives and
/// passes back whether that is under way and how it failed.
#[component]
pub(super) fn RuleEditor(
    editing: Editing,
    on_save: Callback<RuleForm>,
    #[prop(into)] saving: Signal<bool>,
    #[prop(into)] error: Signal<Option<String>>,
    on_close: Callback<()>,
) -> impl IntoView {
    let owner = Owner::current();
    let (title, enabled, definition) = match &editing {
        Editing::New => ("New rule".to_owned(), true, None),
        Editing::Rule(rule) => (
            format!("Edit rule {}", rule.name),
            rule.enabled,
            Some(rule.definition.clone()),
        ),
    };
    let parsed = definition.as_ref().map(RuleFields::of);
    // A definition the fields cannot show opens as JSON.
    let as_json = RwSignal::new(matches!(parsed, Some(Err(_))));
    let json_text = RwSignal::new(definition.as_ref().map(pretty).unwrap_or_default());
    let fields = RuleSignals::new(match parsed {
        Some(Ok(fields)) => fields,
        _ => RuleFields::default(),
    });
    let enabled = RwSignal::new(enabled);
    let invalid = RwSignal::new(None::<String>);
    let destinations: DestinationList = Resource::new(|| (), |_| list_destinations());

    // The definition as edited, in whichever form is shown.
    let current = move || -> Result<Value, String> {
        if as_json.get_untracked() {
            serde_json::from_str(&json_text.get_untracked())
                .map_err(|error| format!("The rule is not valid JSON: {error}."))
        } else {
            fields.read().definition()
        }
    };
    let show_json = move |_| match fields.read().definition() {
        Ok(definition) => {
            json_text.set(pretty(&definition));
            as_json.set(true);
            invalid.set(None);
        }
        Err(message) => invalid.set(Some(message)),
    };
    let show_fields = move |_| {
        let read = serde_json::from_str::<Value>(&json_text.get_untracked())
            .map_err(|error| format!("The rule is not valid JSON: {error}."))
            .and_then(|definition| RuleFields::of(&definition));
        match read {
            Ok(read) => {
                in_owner(&owner, || fields.fill(read));
                as_json.set(false);
                invalid.set(None);
            }
            Err(message) => invalid.set(Some(message)),
        }
    };
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        match current() {
            Ok(definition) => {
                invalid.set(None);
                on_save.run(RuleForm {
                    definition,
                    enabled: enabled.get_untracked(),
                });
            }
            Err(message) => invalid.set(Some(message)),
        }
    };
    let body = move || {
        if as_json.get() {
            view! {
                <label for="rule-json">"Rule (JSON)"</label>
                <textarea id="rule-json" class="code-input" rows="18" spellcheck="false"
                    prop:value=move || json_text.get()
                    on:input=move |event| json_text.set(event_target_value(&event))></textarea>
            }
            .into_any()
        } else {
            view! { <RuleFieldsView fields destinations/> }.into_any()
        }
    };
    view! {
        <section class="card rule-editor" aria-labelledby="rule-editor-title">
            <div class="section-head">
                <h2 id="rule-editor-title">{title}</h2>
                <div class="mode-switch" role="group" aria-label="Edit the rule as">
                    <button type="button" class="secondary" aria-pressed=move || (!as_json.get()).to_string()
                        on:click=show_fields>"Fields"</button>
                    <button type="button" class="secondary" aria-pressed=move || as_json.get().to_string()
                        on:click=show_json>"JSON"</button>
                </div>
            </div>
            <form class="stacked rule-form" aria-labelledby="rule-editor-title" on:submit=submit>
                {body}
                <label class="check">
                    <input type="checkbox" prop:checked=move || enabled.get()
                        on:change=move |event| enabled.set(event_target_checked(&event))/>
                    "Enabled"
                </label>
                <div class="row-actions">
                    <button type="submit" disabled=move || saving.get()>"Save rule"</button>
                    <button type="button" class="secondary" on:click=move |_| on_close.run(())>"Cancel"</button>
                </div>
                {move || invalid.get().map(|message| view! { <ErrorNote message/> })}
                <Failure error/>
            </form>
            <RuleTestBox definition=Callback::new(move |()| current())/>
        </section>
    }
}

/// The fields of a rule.
#[component]
fn RuleFieldsView(fields: RuleSignals, destinations: DestinationList) -> impl IntoView {
    // Types the registry does not list, from a saved rule, stay visible so that they can be unchecked.
    let extra_types: Vec<String> = fields
        .object_types
        .get_untracked()
        .into_iter()
        .filter(|name| OBJECTS.iter().all(|spec| spec.object_type != name.as_str()))
        .collect();
    let type_names = OBJECTS
        .iter()
        .map(|spec| spec.object_type.to_owned())
        .chain(extra_types);
    let owner = Owner::current();
    let add_action = move |_| {
        let action = in_owner(&owner, || ActionSignals::new(ActionFields::default()));
        fields.actions.update(|actions| actions.push(action));
    };
    view! {
        <label for="rule-name">"Rule name"</label>
        <input id="rule-name" type="text" required maxlength="200" bind:value=fields.name/>
        <label for="rule-stage">"Stage"</label>
        <select id="rule-stage" prop:value=move || fields.stage.get()
            on:change=move |event| fields.stage.set(event_target_value(&event))>
            {STAGES.map(|(value, label)| view! { <option value=value>{label}</option> })}
        </select>
        <fieldset class="checks">
            <legend>"Object types"</legend>
            {type_names.map(|name| {
                let id = format!("rule-type-{name}");
                let toggled = name.clone();
                let checked = name.clone();
                view! {
                    <label class="check">
                        <input id=id type="checkbox"
                            prop:checked=move || fields.object_types.with(|types| types.contains(&checked))
                            on:change=move |event| {
                                let on = event_target_checked(&event);
                                fields.object_types.update(|types| {
                                    types.retain(|name| *name != toggled);
                                    if on {
                                        types.push(toggled.clone());
                                    }
                                });
                            }/>
                        {name}
                    </label>
                }
            }).collect_view()}
            <p class="muted">"None checked: every object type."</p>
        </fieldset>
        <label for="rule-event-types">"Event types (optional)"</label>
        <input id="rule-event-types" type="text" placeholder="status_changed, quote_accepted"
            aria-describedby="rule-event-types-hint" bind:value=fields.event_types/>
        <p id="rule-event-types-hint" class="muted">"Separated by commas; empty: every event type."</p>
        <label for="rule-filter">"Filter (JSON)"</label>
        <textarea id="rule-filter" class="code-input" rows="6" spellcheck="false" aria-describedby="rule-filter-hint"
            prop:value=move || fields.filter.get()
            on:input=move |event| fields.filter.set(event_target_value(&event))></textarea>
        <p id="rule-filter-hint" class="muted">
            <code>"{}"</code>" matches every event; "<code>"{\"record.status\": \"Completed\", \"previous.status\": {\"$neq\": \"Completed\"}}"</code>
            " only jobs just completed. Paths read "<code>"event"</code>", "<code>"changes"</code>", "
            <code>"record"</code>", "<code>"previous"</code>" and "<code>"account"</code>"."
        </p>
        <label for="rule-transform">"Transform (JavaScript, optional)"</label>
        <textarea id="rule-transform" class="code-input" rows="6" spellcheck="false"
            aria-describedby="rule-transform-hint" placeholder="(input) => ({ job: input.record.uuid, status: input.record.status })"
            prop:value=move || fields.transform.get()
            on:input=move |event| fields.transform.set(event_target_value(&event))></textarea>
        <p id="rule-transform-hint" class="muted">
            "A function of the document; what it returns is delivered ("<code>"null"</code>" drops the delivery)."
        </p>
        <fieldset class="rule-actions">
            <legend>"Actions"</legend>
            <For each=move || fields.actions.get() key=|action| action.key let:action>
                <ActionEditor action actions=fields.actions destinations/>
            </For>
            {move || fields.actions.with(Vec::is_empty).then(|| view! { <p class="muted">"No actions yet."</p> })}
            <button type="button" class="secondary" on:click=add_action>"Add action"</button>
        </fieldset>
    }
}

#[component]
fn ActionEditor(
    action: ActionSignals,
    actions: RwSignal<Vec<ActionSignals>>,
    destinations: DestinationList,
) -> impl IntoView {
    let key = action.key;
    let number = move || {
        actions.with(|actions| {
            actions
                .iter()
                .position(|other| other.key == key)
                .map_or(0, |index| index + 1)
        })
    };
    let id = move |field: &str| format!("action-{key}-{field}");
    let deliver = move || {
        (action.kind.get() == "deliver").then(|| {
            let open = [action.subject, action.text, action.html, action.blocks]
                .iter()
                .any(|part| !part.get_untracked().is_empty());
            view! {
                <fieldset class="checks">
                    <legend>"Deliver to"</legend>
                    <Transition fallback=|| view! { <p class="muted">"Loading destinations…"</p> }>
                        {move || destinations.get().map(|found| match found {
                            Ok(list) => view! { <DestinationChecks action list/> }.into_any(),
                            Err(error) => view! { <ErrorNote message=error.to_string()/> }.into_any(),
                        })}
                    </Transition>
                </fieldset>
                <details class="template" open=open>
                    <summary>"Message template (optional)"</summary>
                    <p class="muted">
                        "Jinja syntax over the document, e.g. "<code>"Job {{ record.generated_job_id }} is {{ record.status }}"</code>
                        ". Without one, a webhook gets the transform's output, or the whole document, as JSON."
                    </p>
                    <label for=id("subject")>"Subject (email)"</label>
                    <input id=id("subject") type="text" bind:value=action.subject/>
                    <label for=id("text")>"Text"</label>
                    <textarea id=id("text") class="code-input" rows="3" prop:value=move || action.text.get()
                        on:input=move |event| action.text.set(event_target_value(&event))></textarea>
                    <label for=id("html")>"HTML (email)"</label>
                    <textarea id=id("html") class="code-input" rows="3" prop:value=move || action.html.get()
                        on:input=move |event| action.html.set(event_target_value(&event))></textarea>
                    <label for=id("blocks")>"Blocks (Slack)"</label>
                    <textarea id=id("blocks") class="code-input" rows="4" aria-describedby=id("blocks-hint")
                        prop:value=move || action.blocks.get()
                        on:input=move |event| action.blocks.set(event_target_value(&event))></textarea>
                    <p id=id("blocks-hint") class="muted">
                        "Block Kit blocks: renders to a JSON array, and prints each value as JSON: "
                        <code>"[{\"type\": \"section\", \"text\": {\"type\": \"mrkdwn\", \"text\": {{ record.job_description }}}}]"</code>
                    </p>
                </details>
            }
        })
    };
    view! {
        <div class="action-editor">
            <div class="section-head">
                <label for=id("type")>{move || format!("Action {}", number())}</label>
                <button type="button" class="secondary" aria-label=move || format!("Remove action {}", number())
                    on:click=move |_| actions.update(|actions| actions.retain(|other| other.key != key))>
                    "Remove"
                </button>
            </div>
            <select id=id("type") prop:value=move || action.kind.get()
                on:change=move |event| action.kind.set(event_target_value(&event))>
                <option value="deliver">"deliver: send a message to destinations"</option>
                <option value="skip">"skip: finish the event unprocessed (stage received)"</option>
            </select>
            {deliver}
        </div>
    }
}

/// The account's destinations as checkboxes, by name; an entry naming none of them (a deleted destination, or
/// one named by id) stays listed, so that it can be unchecked.
#[component]
fn DestinationChecks(action: ActionSignals, list: Vec<DestinationView>) -> impl IntoView {
    let key = action.key;
    let chosen = action.destinations.get_untracked();
    let unknown: Vec<String> = chosen
        .iter()
        .filter(|entry| {
            !list
                .iter()
                .any(|destination| destination.name == **entry || destination.id == **entry)
        })
        .cloned()
        .collect();
    if list.is_empty() && unknown.is_empty() {
        return view! {
            <p class="muted">"No destinations yet: add one on the "<a href="/admin/destinations">"Destinations page"</a>"."</p>
        }
        .into_any();
    }
    let known = list.into_iter().map(|destination| {
        let kind = super::destination_form::kind_label(&destination.kind).to_owned();
        (destination.name, Some(destination.id), Some(kind))
    });
    let entries = known.chain(unknown.into_iter().map(|name| (name, None, None)));
    entries
        .enumerate()
        .map(|(index, (name, id, kind))| {
            let input_id = format!("action-{key}-destination-{index}");
            let (checked_name, checked_id) = (name.clone(), id.clone());
            let (toggled_name, toggled_id) = (name.clone(), id.clone());
            let missing = kind.is_none();
            view! {
                <label class="check">
                    <input id=input_id type="checkbox"
                        prop:checked=move || action.destinations.with(|chosen| {
                            chosen.contains(&checked_name) || checked_id.as_ref().is_some_and(|id| chosen.contains(id))
                        })
                        on:change=move |event| {
                            let on = event_target_checked(&event);
                            action.destinations.update(|chosen| {
                                chosen.retain(|entry| *entry != toggled_name && Some(entry) != toggled_id.as_ref());
                                if on {
                                    chosen.push(toggled_name.clone());
                                }
                            });
                        }/>
                    {name}
                    {kind.map(|kind| view! { <span class="muted">{format!(" ({kind})")}</span> })}
                    {missing.then(|| view! { <span class="error-text">" (no such destination)"</span> })}
                </label>
            }
        })
        .collect_view()
        .into_any()
}

/// "Test against event": what the definition as edited would do to a stored event, sending nothing.
#[component]
fn RuleTestBox(
    /// The definition as edited, or what is wrong with it.
    definition: Callback<(), Result<Value, String>>,
) -> impl IntoView {
    let test = ServerAction::<TestRule>::new();
    // `/admin/rules?event=…` starts with that event (the event's page links here).
    let query = use_query_map();
    let event_id = RwSignal::new(query.with_untracked(|query| query.get("event").unwrap_or_default()));
    let invalid = RwSignal::new(None::<String>);
    let submit = move |event: leptos::ev::SubmitEvent| {
        event.prevent_default();
        match definition.run(()) {
            Ok(definition) => {
                invalid.set(None);
                test.dispatch(TestRule {
                    definition,
                    event_id: event_id.get_untracked().trim().to_owned(),
                });
            }
            Err(message) => {
                test.value().set(None);
                invalid.set(Some(message));
            }
        }
    };
    view! {
        <form class="rule-test-form" aria-labelledby="rule-test-title" on:submit=submit>
            <h3 id="rule-test-title">"Test against event"</h3>
            <p class="muted">
                "Runs the rule as edited, unsaved, on a stored event and shows what it would do; nothing is sent. \
                 An event's id is on its page in the dashboard."
            </p>
            <div class="inline-fields">
                <label for="rule-test-event">"Event id"</label>
                <input id="rule-test-event" type="text" required bind:value=event_id/>
                <button type="submit" disabled=move || test.pending().get()>"Test against event"</button>
            </div>
        </form>
        {move || invalid.get().map(|message| view! { <ErrorNote message/> })}
        <Failure error=failure(test)/>
        {move || test.value().get().and_then(Result::ok).map(|result| view! { <RuleTestOutcome result/> })}
    }
}

#[component]
fn RuleTestOutcome(result: RuleTest) -> impl IntoView {
    let RuleTest {
        stage,
        matched,
        actions,
        document,
    } = result;
    view! {
        <div class="rule-test" role="status" data-field="rule-test">
            <p>
                {if matched {
                    view! { <span class="badge status-success">"matched"</span> }.into_any()
                } else {
                    view! { <span class="badge status-skipped">"not matched"</span> }.into_any()
                }}
                {format!(" at stage {stage}")}
                {(!matched).then_some(": no action would run.")}
            </p>
            {(!actions.is_empty()).then(|| view! {
                <ol class="previews">
                    {actions.into_iter().enumerate().map(|(index, preview)| view! {
                        <ActionPreviewView number=index + 1 preview/>
                    }).collect_view()}
                </ol>
            })}
            <details>
                <summary>"The document the rule read"</summary>
                <JsonBlock value=document label="Document"/>
            </details>
        </div>
    }
}

#[component]
fn ActionPreviewView(number: usize, preview: ActionPreview) -> impl IntoView {
    let ActionPreview {
        outcome,
        destinations,
        messages,
        detail,
    } = preview;
    let detail_class = if outcome == "failed" { "error-text" } else { "muted" };
    // One message a destination, when there are as many.
    let labels: Vec<String> = if messages.len() == destinations.len() {
        destinations
            .iter()
            .map(|destination| format!("Message to {destination}"))
            .collect()
    } else {
        (1..=messages.len())
            .map(|n| format!("Message {n} of action {number}"))
            .collect()
    };
    view! {
        <li class=format!("preview outcome-{outcome}")>
            <p>
                <strong>{format!("Action {number}: ")}</strong>
                <span class=format!("badge outcome-{outcome}")>{outcome.clone()}</span>
                {(!destinations.is_empty()).then(|| format!(" → {}", destinations.join(", ")))}
            </p>
            {detail.map(|detail| view! { <p class=detail_class>{detail}</p> })}
            {messages.into_iter().zip(labels).map(|(message, label)| view! {
                <p class="muted">{label.clone()}</p>
                <JsonBlock value=message label/>
            }).collect_view()}
        </li>
    }
}
