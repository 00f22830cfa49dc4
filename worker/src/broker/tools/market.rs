//! The market data tools: `quote`, `bars`, `indicator`, `market_clock` and `symbols`. None of
//! them needs a login on `paper`; a broker whose data needs one says so.

use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::Decimal;
use serde_json::json;

use super::{
    BarsArgs, BrokerTools, IndicatorArgs, MarketClockArgs, QuoteArgs, Reply, SymbolsArgs,
    ToolError, respond, success, with_broker,
};
use crate::broker::model::format_time;
use crate::broker::{BarsRequest, BrokerRegistry, Timeframe};
use rmcp::model::CallToolResult;

/// Decimal places of an indicator's value: finer than any price tick.
const INDICATOR_DECIMALS: u32 = 8;

/// Bars one `bars` call returns when it names no limit: a screenful, and enough history for
/// the usual indicators.
pub const DEFAULT_BARS: usize = 100;

/// Most bars one call returns: bounds the work (and the reply) of one call.
pub const MAX_BARS: usize = 1_000;

impl BrokerTools {
    /// `quote`.
    pub async fn quote(&self, args: QuoteArgs) -> CallToolResult {
        respond(quote(&mut *self.registry.lock().await, args).await)
    }

    /// `bars`.
    pub async fn bars(&self, args: BarsArgs) -> CallToolResult {
        respond(bars(&mut *self.registry.lock().await, args).await)
    }

    /// `indicator`.
    pub async fn indicator(&self, args: IndicatorArgs) -> CallToolResult {
        respond(indicator(&mut *self.registry.lock().await, args).await)
    }

    /// `market_clock`.
    pub async fn market_clock(&self, args: MarketClockArgs) -> CallToolResult {
        respond(market_clock(&mut *self.registry.lock().await, args).await)
    }

    /// `symbols`.
    pub async fn symbols(&self, args: SymbolsArgs) -> CallToolResult {
        respond(symbols(&mut *self.registry.lock().await, args).await)
    }

    /// The active broker's symbols (none when it cannot say), for completions.
    pub async fn symbol_names(&self) -> Vec<String> {
        let mut registry = self.registry.lock().await;
        registry
            .symbols(None, None)
            .await
            .map(|symbols| symbols.into_iter().map(|symbol| symbol.symbol).collect())
            .unwrap_or_default()
    }

    /// A quote as a resource's JSON (the `bulkhead://quote/{symbol}` template).
    pub async fn quote_value(&self, symbol: &str) -> Result<serde_json::Value, ToolError> {
        let mut registry = self.registry.lock().await;
        let broker = registry.target(None)?;
        let quote = registry.quote(Some(&broker), symbol).await?;
        Ok(with_broker(&broker, &quote))
    }
}

async fn quote(registry: &mut BrokerRegistry, args: QuoteArgs) -> Reply {
    let broker = registry.target(args.broker.as_deref())?;
    let quote = registry.quote(Some(&broker), &args.symbol).await?;
    let text = format!(
        "{} on {broker}: bid {} ask {} last {} {} at {}",
        quote.symbol,
        quote.bid,
        quote.ask,
        quote.last,
        quote.currency,
        format_time(&quote.time)
    );
    Ok(success(with_broker(&broker, &quote), text))
}

async fn bars(registry: &mut BrokerRegistry, args: BarsArgs) -> Reply {
    let broker = registry.target(args.broker.as_deref())?;
    let limit = args.limit.unwrap_or(DEFAULT_BARS);
    if !(1..=MAX_BARS).contains(&limit) {
        return Err(ToolError::Invalid(format!(
            "limit must be 1 to {MAX_BARS}, got {limit}: pass a limit in that range"
        )));
    }
    let start = parse_time("start", args.start.as_deref())?;
    let end = parse_time("end", args.end.as_deref())?;
    if let (Some(start), Some(end)) = (start, end)
        && start >= end
    {
        return Err(ToolError::Invalid("start must be before end".to_owned()));
    }
    let request = BarsRequest {
        symbol: args.symbol,
        timeframe: args.timeframe,
        limit,
        start,
        end,
    };
    let bars = registry.bars(Some(&broker), request).await?;
    let text = match (bars.bars.first(), bars.bars.last()) {
        (Some(first), Some(last)) => format!(
            "{} {} bars of {} on {broker} from {} to {}; last close {}",
            bars.bars.len(),
            bars.timeframe.as_str(),
            bars.symbol,
            format_time(&first.time),
            format_time(&last.time),
            last.close
        ),
        _ => format!(
            "no {} bars of {} on {broker} in that range",
            bars.timeframe.as_str(),
            bars.symbol
        ),
    };
    Ok(success(with_broker(&broker, &bars), text))
}

/// An optional RFC 3339 argument.
fn parse_time(field: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ToolError> {
    value
        .map(|text| {
            DateTime::parse_from_rfc3339(text.trim())
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| {
                    ToolError::Invalid(format!(
                        "{field} must be an RFC 3339 time such as 2026-01-05T14:30:00Z, got {text:?}"
                    ))
                })
        })
        .transpose()
}

async fn indicator(registry: &mut BrokerRegistry, args: IndicatorArgs) -> Reply {
    let broker = registry.target(args.broker.as_deref())?;
    let needed = args.kind.prices_needed(args.period)?;
    let timeframe = args.timeframe.unwrap_or(Timeframe::OneMinute);
    let request = BarsRequest {
        symbol: args.symbol,
        timeframe,
        limit: needed,
        start: None,
        end: None,
    };
    let bars = registry.bars(Some(&broker), request).await?;
    let prices: Vec<Decimal> = bars.bars.iter().map(|bar| bar.close).collect();
    let period = usize::try_from(args.period).unwrap_or(usize::MAX);
    let value = args.kind.compute(&prices, period)?;
    let value: Decimal = value.round_dp(INDICATOR_DECIMALS).normalize();
    let end = bars
        .bars
        .last()
        .map(|bar| format_time(&(bar.time + TimeDelta::seconds(timeframe.seconds()))))
        .unwrap_or_default();
    let text = format!(
        "{}({}) of {} on {broker}: {value}, over {} {} closes ending {end}",
        args.kind.label(),
        args.period,
        bars.symbol,
        prices.len(),
        timeframe.as_str(),
    );
    let structured = json!({
        "broker": broker,
        "symbol": bars.symbol,
        "kind": args.kind,
        "period": args.period,
        "value": value,
        "prices": prices,
        "timeframe": timeframe,
        "interval_seconds": timeframe.seconds(),
        "end": end,
    });
    Ok(success(structured, text))
}

async fn market_clock(registry: &mut BrokerRegistry, args: MarketClockArgs) -> Reply {
    let broker = registry.target(args.broker.as_deref())?;
    let clocks = registry
        .market_clock(Some(&broker), args.market.as_deref())
        .await?;
    let lines: Vec<String> = clocks
        .iter()
        .map(
            |clock| match (clock.is_open, clock.next_open, clock.next_close) {
                (true, _, None) => format!("{} open around the clock", clock.market),
                (true, _, Some(close)) => {
                    format!("{} open until {}", clock.market, format_time(&close))
                }
                (false, Some(open), _) => {
                    format!("{} closed until {}", clock.market, format_time(&open))
                }
                (false, None, _) => format!("{} closed", clock.market),
            },
        )
        .collect();
    let text = format!("{broker}: {}", lines.join("; "));
    Ok(success(json!({ "broker": broker, "clocks": clocks }), text))
}

async fn symbols(registry: &mut BrokerRegistry, args: SymbolsArgs) -> Reply {
    let broker = registry.target(args.broker.as_deref())?;
    let symbols = registry
        .symbols(Some(&broker), args.query.as_deref())
        .await?;
    let names: Vec<&str> = symbols
        .iter()
        .map(|symbol| symbol.symbol.as_str())
        .collect();
    let text = format!("{broker}: {} symbols: {}", names.len(), names.join(", "));
    Ok(success(
        json!({ "broker": broker, "symbols": symbols }),
        text,
    ))
}
