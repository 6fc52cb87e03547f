//! The webhook dashboard's browser bundle: hydrates the dashboard's pages only (the events and one event), so that
//! the page admins open most downloads none of the other admin pages (`frontend` is the whole site's bundle).

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    app::hydrate_dashboard();
}
