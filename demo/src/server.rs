//! A small threaded HTTP/1.1 server loop shared by the origin and the issuer.

use std::io::Write;
use std::sync::Arc;

use tiny_http::{Header, Request, Response, Server};

/// A response: status, content type, body.
pub(crate) struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub(crate) fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            body: value.to_string().into_bytes(),
            headers: vec![("content-type", "application/json".to_owned())],
        }
    }
}

/// Binds, prints `listening on http://<addr>`, and answers requests on `threads` threads.
pub(crate) fn serve(
    listen: &str,
    threads: usize,
    handler: impl Fn(&mut Request) -> Reply + Send + Sync + 'static,
) -> Result<(), String> {
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    serve_on(listener, threads, handler)
}

/// [`serve`] on an already bound listener.
pub(crate) fn serve_on(
    listener: std::net::TcpListener,
    threads: usize,
    handler: impl Fn(&mut Request) -> Reply + Send + Sync + 'static,
) -> Result<(), String> {
    let server = Server::from_listener(listener, None).map_err(|e| format!("cannot serve: {e}"))?;
    let addr = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| "not an IP listener".to_owned())?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{addr}").map_err(|e| e.to_string())?;
    stdout.flush().map_err(|e| e.to_string())?;

    let server = Arc::new(server);
    let handler = Arc::new(handler);
    let workers: Vec<_> = (0..threads.max(1))
        .map(|_| {
            let server = Arc::clone(&server);
            let handler = Arc::clone(&handler);
            std::thread::spawn(move || {
                for mut request in server.incoming_requests() {
                    let reply = handler(&mut request);
                    let mut response =
                        Response::from_data(reply.body).with_status_code(reply.status);
                    for (name, value) in reply.headers {
                        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                            response.add_header(h);
                        }
                    }
                    let _ = request.respond(response);
                }
            })
        })
        .collect();
    for worker in workers {
        worker
            .join()
            .map_err(|_| "a server thread panicked".to_owned())?;
    }
    Ok(())
}
