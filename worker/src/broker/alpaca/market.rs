//! Market data on Alpaca: quotes and bars (stocks from `/v2/stocks`, crypto pairs from
//! `/v1beta3/crypto/us`), the market clocks, and the tradable symbols.

use chrono::Utc;

use super::http::{Api, Request};
use super::wire::{
    self, CRYPTO, CryptoBars, CryptoLatestQuotes, StockBars, StockLatestQuote, US_EQUITY, USD,
    WireAsset, WireClock, alpaca_symbol, crypto_clock, is_crypto,
};
use super::{AlpacaBroker, CRYPTO_LOCATION, path_segment};
use crate::broker::model::{Bars, format_time};
use crate::broker::{BarsRequest, BrokerError, Credentials, MarketClock, Quote, SymbolInfo};

impl AlpacaBroker {
    pub(super) async fn quote_now(
        &self,
        credentials: &Credentials,
        symbol: &str,
    ) -> Result<Quote, BrokerError> {
        let symbol = alpaca_symbol(symbol);
        if is_crypto(&symbol) {
            let path = format!("/v1beta3/crypto/{CRYPTO_LOCATION}/latest/quotes");
            let request = Request::get(Api::Data, path).query("symbols", symbol.clone());
            let mut quotes: CryptoLatestQuotes = self.call(credentials, request).await?;
            let quote = quotes
                .quotes
                .remove(&symbol)
                .ok_or_else(|| self.unknown_symbol(&symbol))?;
            let currency = symbol.split_once('/').map_or(USD, |(_, quote)| quote);
            return Ok(quote.into_model(symbol.clone(), currency.to_owned()));
        }
        let path = format!("/v2/stocks/{}/quotes/latest", path_segment(&symbol));
        let quote: StockLatestQuote = self
            .call(credentials, Request::get(Api::Data, path))
            .await
            .map_err(|error| self.not_found_as_unknown(error, &symbol))?;
        let currency = quote.currency.unwrap_or_else(|| USD.to_owned());
        Ok(quote.quote.into_model(quote.symbol, currency))
    }

    pub(super) async fn bars_now(
        &self,
        credentials: &Credentials,
        request: BarsRequest,
    ) -> Result<Bars, BrokerError> {
        let symbol = alpaca_symbol(&request.symbol);
        let crypto = is_crypto(&symbol);
        let path = if crypto {
            format!("/v1beta3/crypto/{CRYPTO_LOCATION}/bars")
        } else {
            format!("/v2/stocks/{}/bars", path_segment(&symbol))
        };
        // Without a start, the newest `limit` bars: ask newest first, then turn them around.
        let newest_first = request.start.is_none();
        let mut query = Request::get(Api::Data, path)
            .query("timeframe", wire::timeframe(request.timeframe))
            .query("limit", request.limit.to_string())
            .query("sort", if newest_first { "desc" } else { "asc" });
        if crypto {
            query = query.query("symbols", symbol.clone());
        }
        if let Some(start) = request.start {
            query = query.query("start", format_time(&start));
        }
        if let Some(end) = request.end {
            query = query.query("end", format_time(&end));
        }
        let mut bars = if crypto {
            let mut answer: CryptoBars = self.call(credentials, query).await?;
            answer.bars.remove(&symbol).unwrap_or_default()
        } else {
            let answer: StockBars = self
                .call(credentials, query)
                .await
                .map_err(|error| self.not_found_as_unknown(error, &symbol))?;
            answer.bars.unwrap_or_default()
        };
        if newest_first {
            bars.reverse();
        }
        Ok(Bars {
            symbol,
            timeframe: request.timeframe,
            bars: bars.into_iter().map(wire::WireBar::into_model).collect(),
        })
    }

    pub(super) async fn clocks_now(
        &self,
        credentials: &Credentials,
        market: Option<&str>,
    ) -> Result<Vec<MarketClock>, BrokerError> {
        let equity = matches!(market, None | Some(US_EQUITY));
        let crypto = matches!(market, None | Some(CRYPTO));
        if !equity && !crypto {
            return Err(BrokerError::NotSupported {
                broker: self.name.clone(),
                what: format!("market {}", market.unwrap_or_default()),
                advice: format!("use {US_EQUITY} or {CRYPTO}"),
            });
        }
        let mut clocks = Vec::new();
        if equity {
            let clock: WireClock = self
                .call(credentials, Request::get(Api::Trading, "/v2/clock"))
                .await?;
            clocks.push(clock.into_model());
        }
        if crypto {
            clocks.push(crypto_clock(Utc::now()));
        }
        Ok(clocks)
    }

    pub(super) async fn symbols_now(
        &self,
        credentials: &Credentials,
        query: Option<&str>,
    ) -> Result<Vec<SymbolInfo>, BrokerError> {
        let needle = query.map(|query| query.trim().to_ascii_lowercase());
        let mut symbols = Vec::new();
        for class in [US_EQUITY, CRYPTO] {
            let request = Request::get(Api::Trading, "/v2/assets")
                .query("status", "active")
                .query("asset_class", class);
            let assets: Vec<WireAsset> = self.call(credentials, request).await?;
            symbols.extend(
                assets
                    .into_iter()
                    .filter(|asset| asset.tradable)
                    .filter(|asset| match &needle {
                        Some(needle) => {
                            asset.symbol.to_ascii_lowercase().contains(needle.as_str())
                                || asset.name.to_ascii_lowercase().contains(needle.as_str())
                        }
                        None => true,
                    })
                    .map(WireAsset::into_model),
            );
        }
        Ok(symbols)
    }

    pub(super) fn unknown_symbol(&self, symbol: &str) -> BrokerError {
        BrokerError::UnknownSymbol {
            broker: self.name.clone(),
            symbol: symbol.to_owned(),
            known: "what the symbols tool lists (call symbols with a query to search)".to_owned(),
        }
    }

    /// Market data answers 404 (or 422) for a symbol it does not know.
    pub(super) fn not_found_as_unknown(&self, error: BrokerError, symbol: &str) -> BrokerError {
        match error {
            BrokerError::Rejected { .. } => self.unknown_symbol(symbol),
            error => error,
        }
    }
}
