//! Applying a parsed request: which are answered at once, which from the catalog (at once
//! once it is loaded), and which run as tracked tasks of their own because they wait for a
//! worker.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::catalog::CatalogData;

use super::reply::{self, Answer, Outgoing, RpcError};
use super::request::{Method, Request};
use super::{Connection, Sink, era};

impl Connection {
    pub(super) async fn on_request(self: &Arc<Self>, id: Value, request: Request, sink: &Sink) {
        let Request { method, params } = request;
        let params = params.as_ref();
        let failed = if era::removed(method.name(), params) {
            RpcError::method_not_found(method.name())
        } else {
            match method {
                Method::Initialize => match self.negotiate(params) {
                    Ok(version) => {
                        let answer = move |catalog: &CatalogData| {
                            Ok(reply::initialize_result(version, catalog))
                        };
                        return self.answer_from_catalog(id, sink.clone(), answer).await;
                    }
                    Err(error) => error,
                },
                Method::Ping => return send(sink, &id, Ok::<_, RpcError>(json!({}))).await,
                Method::Discover => match era::check_discover(params) {
                    Ok(()) => {
                        let answer = |catalog: &CatalogData| Ok(reply::discover_result(catalog));
                        return self.answer_from_catalog(id, sink.clone(), answer).await;
                    }
                    Err(error) => error,
                },
                Method::Listen => match self.era(params) {
                    Ok(_) => return self.listen(id, sink.clone()),
                    Err(error) => error,
                },
                Method::ToolsList => match self.era(params) {
                    Ok(era) => {
                        let answer =
                            move |catalog: &CatalogData| Ok(reply::tools_list_result(catalog, era));
                        return self.answer_from_catalog(id, sink.clone(), answer).await;
                    }
                    Err(error) => error,
                },
                Method::ToolsCall => match self.era(params) {
                    Ok(era) => {
                        let params = params.cloned();
                        return self.spawn_request(
                            id,
                            sink.clone(),
                            move |connection, sink| async move {
                                connection.call_tool(params, era, &sink).await
                            },
                        );
                    }
                    Err(error) => error,
                },
                Method::Forwarded(forwarded) => match self.era(params) {
                    Ok(era) => {
                        let params = params.cloned();
                        return self.spawn_request(
                            id,
                            sink.clone(),
                            move |connection, sink| async move {
                                connection
                                    .forward_method(forwarded, params, era, &sink)
                                    .await
                            },
                        );
                    }
                    Err(error) => error,
                },
                Method::Unknown(method) => RpcError::method_not_found(&method),
            }
        };
        send(sink, &id, Err::<Value, _>(failed)).await;
    }

    /// Answer from the catalog, at once if it is loaded, else once a worker has supplied it.
    async fn answer_from_catalog<F>(self: &Arc<Self>, id: Value, sink: Sink, answer: F)
    where
        F: FnOnce(&CatalogData) -> Result<Value, RpcError> + Send + 'static,
    {
        if let Some(catalog) = self.frontend.catalog.loaded() {
            return send(&sink, &id, answer(&catalog)).await;
        }
        let connection = self.clone();
        self.frontend.tasks.spawn(async move {
            let result = connection
                .catalog()
                .await
                .and_then(|catalog| answer(&catalog));
            send(&sink, &id, result).await;
        });
    }

    /// Run a request that needs a worker as a tracked task of its own. The client cancels it
    /// with `notifications/cancelled` or by closing its response stream; a cancelled request
    /// gets no response, as MCP specifies.
    fn spawn_request<F, W>(self: &Arc<Self>, id: Value, sink: Sink, work: W)
    where
        W: FnOnce(Arc<Self>, Sink) -> F + Send + 'static,
        F: Future<Output = Result<Answer, RpcError>> + Send + 'static,
    {
        let token = self.queue.start(&id);
        let connection = self.clone();
        self.frontend.tasks.spawn(async move {
            let work = work(connection.clone(), sink.clone());
            let result = tokio::select! {
                result = work => Some(result),
                () = token.cancelled() => None,
                () = sink.closed() => None,
            };
            connection.queue.finish(&id);
            if let Some(result) = result {
                send(&sink, &id, result).await;
            }
        });
    }

    /// `subscriptions/listen`: acknowledge with the kinds we will send — none, since the tool
    /// catalog never changes while the supervisor runs — then hold the stream open until the
    /// client cancels it or goes away. Not tracked: it is no work in flight.
    fn listen(self: &Arc<Self>, id: Value, sink: Sink) {
        let token = self.queue.start(&id);
        let connection = self.clone();
        tokio::spawn(async move {
            sink.send(Outgoing::from_value(&reply::listen_acknowledged(&id)))
                .await;
            tokio::select! {
                () = token.cancelled() => {}
                () = sink.closed() => {}
            }
            connection.queue.finish(&id);
        });
    }
}

/// Send the response to request `id`; a client that went away misses it.
async fn send(sink: &Sink, id: &Value, result: Result<impl Into<Answer>, RpcError>) {
    sink.send(reply::response(id, result)).await;
}
