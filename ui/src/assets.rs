//! Static files, embedded in the binary so the UI runs from any directory and never fetches
//! anything from the internet. URLs carry a content hash, so browsers may cache them for a year
//! (`routes::assets` serves them).

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

const STYLE_CSS: &str = include_str!("../static/style.css");
const APP_JS: &str = include_str!("../static/app.js");
const ICON_SVG: &str = include_str!("../static/icon.svg");
/// Shown in place of an image the API no longer keeps.
pub const PLACEHOLDER_SVG: &str = include_str!("../static/placeholder.svg");

struct Asset {
    name: &'static str,
    body: &'static str,
    content_type: &'static str,
}

const ASSETS: [Asset; 4] = [
    Asset {
        name: "style.css",
        body: STYLE_CSS,
        content_type: "text/css; charset=utf-8",
    },
    Asset {
        name: "app.js",
        body: APP_JS,
        content_type: "text/javascript; charset=utf-8",
    },
    Asset {
        name: "icon.svg",
        body: ICON_SVG,
        content_type: "image/svg+xml",
    },
    Asset {
        name: "placeholder.svg",
        body: PLACEHOLDER_SVG,
        content_type: "image/svg+xml",
    },
];

fn versioned(name: &str, body: &str, cell: &'static OnceLock<String>) -> &'static str {
    cell.get_or_init(|| {
        let digest = Sha256::digest(body.as_bytes());
        format!("/static/{name}?v={}", &hex::encode(digest)[..12])
    })
}

/// URL of the stylesheet, with its content hash.
pub fn css_href() -> &'static str {
    static CELL: OnceLock<String> = OnceLock::new();
    versioned("style.css", STYLE_CSS, &CELL)
}

/// URL of the script, with its content hash.
pub fn js_href() -> &'static str {
    static CELL: OnceLock<String> = OnceLock::new();
    versioned("app.js", APP_JS, &CELL)
}

/// URL of the favicon, with its content hash.
pub fn icon_href() -> &'static str {
    static CELL: OnceLock<String> = OnceLock::new();
    versioned("icon.svg", ICON_SVG, &CELL)
}

/// The embedded file called `name`: its body and content type.
pub fn find(name: &str) -> Option<(&'static str, &'static str)> {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| (a.body, a.content_type))
}
