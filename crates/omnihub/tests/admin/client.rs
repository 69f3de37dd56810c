//! A person's browser, as far as the admin app can tell: it keeps the cookies it is given,
//! does not follow redirects (the tests look at them), and fills in forms with their CSRF token.

use std::collections::BTreeMap;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{RequestBuilder, Response};

/// A request with an urlencoded form body, as a browser sends it.
pub fn form(request: RequestBuilder, fields: &[(&str, &str)]) -> RequestBuilder {
    request
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).expect("a form"))
}

pub struct Browser {
    base: String,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

/// An answer, read whole.
pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub retry_after: Option<String>,
    pub cache_control: Option<String>,
    pub body: String,
}

impl Page {
    /// The value of the first `name="_csrf"` field of the page.
    pub fn csrf(&self) -> String {
        let marker = "name=\"_csrf\" value=\"";
        let start = self.body.find(marker).expect("a form with a CSRF token") + marker.len();
        let end = self.body[start..].find('"').expect("the end of the token");
        self.body[start..start + end].to_owned()
    }

    pub fn has(&self, text: &str) -> bool {
        self.body.contains(text)
    }
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("client"),
            cookies: BTreeMap::new(),
        }
    }

    fn with_cookies(&self, request: RequestBuilder) -> RequestBuilder {
        let header = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        if header.is_empty() {
            request
        } else {
            request.header(COOKIE, header)
        }
    }

    async fn read(&mut self, response: Response) -> Page {
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().expect("cookie");
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|v: &reqwest::header::HeaderValue| v.to_str().expect("text").to_owned())
        };
        Page {
            status: response.status().as_u16(),
            location: header(LOCATION),
            retry_after: header(reqwest::header::RETRY_AFTER),
            cache_control: header(reqwest::header::CACHE_CONTROL),
            body: response.text().await.expect("body"),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.with_cookies(self.http.get(format!("{}{path}", self.base)));
        let response = request.send().await.expect("the server answers");
        self.read(response).await
    }

    /// Posts a form as it is given: with or without a CSRF token.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let request = self.with_cookies(form(self.http.post(format!("{}{path}", self.base)), fields));
        let response = request.send().await.expect("the server answers");
        self.read(response).await
    }

    /// Posts a form of the page at `from`, with that page's CSRF token.
    pub async fn submit(&mut self, from: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.get(from).await.csrf();
        let mut all = vec![("_csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }

    pub async fn log_in(&mut self, email: &str, password: &str) -> Page {
        let form = self.get("/admin/login").await;
        let token = form.csrf();
        self.post(
            "/admin/login",
            &[("email", email), ("password", password), ("_csrf", &token)],
        )
        .await
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }
}
