//! The client portal's browser bundle: hydrates the portal's pages only, so that a portal user downloads none of
//! the admin pages (`frontend` is the whole site's bundle).

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    app::hydrate_portal();
}
