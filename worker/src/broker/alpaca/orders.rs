//! Orders and positions on Alpaca beyond placing one (see `place`): listing and looking up,
//! replacing, cancelling one or all, and closing a position — with a market order placed like
//! any other, so with its `client_order_id`, exactly once.

use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;

use super::http::{Api, Failure, Request};
use super::wire::{WireAsset, WireOrder, WirePosition, alpaca_symbol, is_crypto};
use super::{AlpacaBroker, MAX_ORDERS_LISTED, path_segment};
use crate::broker::model::CloseAmount;
use crate::broker::{
    BrokerError, CloseRequest, Credentials, Order, OrderAmount, OrderFilter, OrderLookup,
    OrderRequest, OrderType, ReplaceRequest, TimeInForce,
};

impl AlpacaBroker {
    pub(super) async fn orders_now(
        &self,
        credentials: &Credentials,
        filter: OrderFilter,
    ) -> Result<Vec<Order>, BrokerError> {
        let status = match filter {
            OrderFilter::Open => "open",
            OrderFilter::Closed => "closed",
            OrderFilter::All => "all",
        };
        // The newest orders, listed newest last like every broker's.
        let request = Request::get(Api::Trading, "/v2/orders")
            .query("status", status)
            .query("limit", MAX_ORDERS_LISTED.to_string())
            .query("direction", "desc")
            .query("nested", "true");
        let orders: Vec<WireOrder> = self.call(credentials, request).await?;
        Ok(orders
            .into_iter()
            .rev()
            .map(WireOrder::into_model)
            .collect())
    }

    pub(super) async fn order_now(
        &self,
        credentials: &Credentials,
        lookup: OrderLookup,
    ) -> Result<Order, BrokerError> {
        match lookup {
            OrderLookup::OrderId(order_id) => self.order_by_id(credentials, &order_id).await,
            OrderLookup::ClientOrderId(client_order_id) => {
                match self.by_client_order_id(credentials, &client_order_id).await {
                    Ok(Some(order)) => Ok(order),
                    Ok(None) => Err(BrokerError::UnknownOrder {
                        broker: self.name.clone(),
                        order_id: format!("with client_order_id {client_order_id}"),
                    }),
                    Err(failure) => Err(self.http.error(failure)),
                }
            }
        }
    }

    pub(super) async fn order_by_id(
        &self,
        credentials: &Credentials,
        order_id: &str,
    ) -> Result<Order, BrokerError> {
        let path = format!("/v2/orders/{}", path_segment(order_id));
        let request = Request::get(Api::Trading, path).query("nested", "true");
        match self.http.send::<WireOrder>(credentials, request).await {
            Ok(order) => Ok(order.into_model()),
            Err(failure) => Err(self.order_failure(failure, order_id, "looked up")),
        }
    }

    pub(super) async fn replace_now(
        &self,
        credentials: &Credentials,
        order_id: &str,
        request: ReplaceRequest,
    ) -> Result<Order, BrokerError> {
        let text = |value: Option<Decimal>| value.map(|value| value.normalize().to_string());
        let mut body = serde_json::Map::new();
        for (field, value) in [
            ("qty", text(request.qty)),
            ("limit_price", text(request.limit_price)),
            ("stop_price", text(request.stop_price)),
            (
                "time_in_force",
                request.time_in_force.map(|tif| tif.as_str().to_owned()),
            ),
            ("client_order_id", request.client_order_id),
        ] {
            if let Some(value) = value {
                body.insert(field.to_owned(), value.into());
            }
        }
        let path = format!("/v2/orders/{}", path_segment(order_id));
        let patch = Request::get(Api::Trading, path)
            .method(Method::PATCH)
            .body(body.into());
        match self.http.send::<WireOrder>(credentials, patch).await {
            Ok(order) => Ok(order.into_model()),
            Err(failure) => Err(self.order_failure(failure, order_id, "replaced")),
        }
    }

    pub(super) async fn cancel_now(
        &self,
        credentials: &Credentials,
        order_id: &str,
    ) -> Result<Order, BrokerError> {
        let path = format!("/v2/orders/{}", path_segment(order_id));
        let delete = Request::get(Api::Trading, path).method(Method::DELETE);
        match self
            .http
            .send::<serde_json::Value>(credentials, delete)
            .await
        {
            Ok(_) => self.order_by_id(credentials, order_id).await,
            // Not cancelable: say why, from the order's status, when it is already done.
            Err(Failure::Status {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                reason,
                ..
            }) => match self.order_by_id(credentials, order_id).await {
                Ok(order) if order.status.is_final() => Err(BrokerError::OrderNotOpen {
                    order_id: order_id.to_owned(),
                    status: order.status.as_str(),
                    action: "cancelled",
                }),
                _ => Err(BrokerError::Rejected {
                    broker: self.name.clone(),
                    reason: format!("order {order_id} cannot be cancelled ({reason})"),
                }),
            },
            Err(failure) => Err(self.order_failure(failure, order_id, "cancelled")),
        }
    }

    pub(super) async fn cancel_all_now(
        &self,
        credentials: &Credentials,
        symbol: Option<&str>,
    ) -> Result<Vec<Order>, BrokerError> {
        let symbol = symbol.map(alpaca_symbol);
        let open = self.orders_now(credentials, OrderFilter::Open).await?;
        let mut cancelled = Vec::new();
        for order in open {
            if symbol
                .as_deref()
                .is_some_and(|symbol| symbol != order.symbol)
            {
                continue;
            }
            match self.cancel_now(credentials, &order.order_id).await {
                Ok(order) => cancelled.push(order),
                // Filled or cancelled meanwhile: nothing left to cancel.
                Err(BrokerError::OrderNotOpen { .. } | BrokerError::UnknownOrder { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(cancelled)
    }

    /// Closes a position with a market order on the other side, placed like any order (so with
    /// its `client_order_id`, exactly once).
    pub(super) async fn close_now(
        &self,
        credentials: &Credentials,
        request: CloseRequest,
    ) -> Result<Order, BrokerError> {
        let symbol = alpaca_symbol(&request.symbol);
        let path = format!("/v2/positions/{}", path_segment(&symbol.replace('/', "")));
        let position: WirePosition = match self
            .http
            .send(credentials, Request::get(Api::Trading, path))
            .await
        {
            Ok(position) => position,
            Err(Failure::Status {
                status: StatusCode::NOT_FOUND,
                ..
            }) => {
                return Err(BrokerError::NoPosition {
                    broker: self.name.clone(),
                    symbol,
                });
            }
            Err(failure) => return Err(self.http.error(failure)),
        };
        let held = position.qty.abs();
        let qty = match request.amount {
            CloseAmount::All => held,
            CloseAmount::Qty(qty) => qty.min(held),
            CloseAmount::Percent(percent) => {
                let step = self.qty_increment(credentials, &symbol).await?;
                round_down_to(held * percent / Decimal::ONE_HUNDRED, step)
            }
        };
        if qty <= Decimal::ZERO {
            return Err(BrokerError::Rejected {
                broker: self.name.clone(),
                reason: format!(
                    "that share of the {held} {symbol} held is less than the smallest quantity \
                     it trades in; close a larger part"
                ),
            });
        }
        let order = OrderRequest {
            symbol: position.symbol.clone(),
            side: position.closing_side(),
            amount: OrderAmount::Qty(qty),
            order_type: OrderType::Market,
            time_in_force: Some(if is_crypto(&symbol) {
                TimeInForce::Gtc
            } else {
                TimeInForce::Day
            }),
            limit_price: None,
            stop_price: None,
            take_profit_price: None,
            stop_loss_price: None,
            client_order_id: request.client_order_id,
        };
        Ok(self.place(credentials, order).await?.order)
    }

    /// The quantity step of `symbol`'s orders: the asset's `min_trade_increment`, else a
    /// fractionable asset's finest step, else one.
    async fn qty_increment(
        &self,
        credentials: &Credentials,
        symbol: &str,
    ) -> Result<Decimal, BrokerError> {
        // A pair goes in a path without its slash (`BTCUSD`), as for positions.
        let path = format!("/v2/assets/{}", path_segment(&symbol.replace('/', "")));
        let asset: WireAsset = self
            .http
            .send(credentials, Request::get(Api::Trading, path))
            .await
            .map_err(|failure| self.http.error(failure))?;
        Ok(asset.into_model().qty_increment)
    }

    /// An order endpoint's failure: 404 is an unknown order, 422 an order past `action`.
    pub(super) fn order_failure(
        &self,
        failure: Failure,
        order_id: &str,
        action: &'static str,
    ) -> BrokerError {
        match failure {
            Failure::Status {
                status: StatusCode::NOT_FOUND,
                ..
            } => BrokerError::UnknownOrder {
                broker: self.name.clone(),
                order_id: order_id.to_owned(),
            },
            Failure::Status {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                reason,
                ..
            } if action != "looked up" && reason.to_ascii_lowercase().contains("order") => {
                BrokerError::Rejected {
                    broker: self.name.clone(),
                    reason: format!(
                        "order {order_id} cannot be {action} ({reason}); call order_get to see \
                         its status"
                    ),
                }
            }
            failure => self.http.error(failure),
        }
    }
}

/// `qty` rounded down to a whole number of `step`s (a zero or negative step leaves it whole).
fn round_down_to(qty: Decimal, step: Decimal) -> Decimal {
    if step <= Decimal::ZERO {
        return qty.trunc();
    }
    ((qty / step).trunc() * step).normalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_of_a_position_rounds_down_to_the_assets_step() {
        let qty = |text: &str| text.parse::<Decimal>().unwrap();
        assert_eq!(
            round_down_to(qty("0.0139358"), qty("0.00000001")),
            qty("0.0139358")
        );
        assert_eq!(
            round_down_to(qty("0.013935876"), qty("0.00000001")),
            qty("0.01393587")
        );
        assert_eq!(round_down_to(qty("7.5"), Decimal::ONE), qty("7"));
        assert_eq!(round_down_to(qty("0.4"), Decimal::ONE), Decimal::ZERO);
    }
}
