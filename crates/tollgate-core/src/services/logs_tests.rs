//! Unit tests of the log search's parameters and of folding daily spend into report rows.

use super::*;

fn at(raw: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc)).unwrap_or_default()
}

fn day(raw: &str) -> NaiveDate {
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap_or_default()
}

fn spend(on: &str, user: &str, model: &str, cost: i64) -> DailySpend {
    DailySpend {
        day: day(on),
        user_id: Some(user.to_owned()),
        role_id: Some(1),
        profile_id: Some(7),
        provider: "openai".to_owned(),
        model: model.to_owned(),
        requests: 1,
        denied: 0,
        prompt_tokens: 10,
        completion_tokens: 5,
        cost: Money::from_micros(cost).unwrap_or_default(),
    }
}

fn problems_of(result: Result<LogSearch, CoreError>) -> Vec<String> {
    match result {
        Err(CoreError::Validation(fields)) => fields.into_iter().map(|f| f.param).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn a_search_reads_lists_times_ranges_and_defaults() {
    let params = LogParams {
        start_time: Some("2026-01-01T00:00:00Z".into()),
        providers: Some("openai, anthropic,,".into()),
        status: Some("error".into()),
        denial_types: Some("budget_exceeded,any".into()),
        min_cost: Some("0.5".into()),
        profile_ids: Some("3,4".into()),
        ..LogParams::default()
    };
    let search = parse_search(&params).unwrap_or_default();
    assert_eq!(search.filter.start, Some(at("2026-01-01T00:00:00Z")));
    assert_eq!(search.filter.providers, vec!["openai", "anthropic"]);
    assert_eq!(search.filter.outcomes, vec![Outcome::Error]);
    assert_eq!(search.filter.denials, vec!["budget_exceeded"]);
    assert!(search.filter.any_denial);
    assert_eq!(search.filter.min_cost.map(Money::micros), Some(500_000));
    assert_eq!(search.filter.profiles, vec![3, 4]);
    assert_eq!(search.paging, Paging { limit: Some(DEFAULT_LOG_LIMIT), offset: 0 });
    assert_eq!((search.sort, search.ascending), (LogSort::Timestamp, false));
}

#[test]
fn every_bad_search_parameter_is_named_at_once() {
    let params = LogParams {
        start_time: Some("yesterday".into()),
        status: Some("processing".into()),
        profile_ids: Some("3,x".into()),
        min_cost: Some("-1".into()),
        sort_by: Some("name".into()),
        order: Some("up".into()),
        limit: Some("0".into()),
        offset: Some("-3".into()),
        ..LogParams::default()
    };
    let mut named = problems_of(parse_search(&params));
    named.sort();
    assert_eq!(named, vec!["limit", "min_cost", "offset", "order", "profile_ids", "sort_by", "start_time", "status"]);
    let too_many = LogParams { limit: Some("1001".into()), ..LogParams::default() };
    assert_eq!(problems_of(parse_search(&too_many)), vec!["limit"]);
    let backwards = LogParams {
        start_time: Some("2026-02-01T00:00:00Z".into()),
        end_time: Some("2026-01-01T00:00:00Z".into()),
        ..LogParams::default()
    };
    assert_eq!(problems_of(parse_search(&backwards)), vec!["end_time"]);
}

#[test]
fn a_report_defaults_to_this_month_grouped_by_user() {
    let now = at("2026-03-15T12:00:00Z");
    let query = parse_report(&ReportParams::default(), now).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((query.start, query.end), (at("2026-03-01T00:00:00Z"), now));
    assert_eq!((query.group_by, query.interval), (vec![Dimension::User], Interval::Total));
    let bad = ReportParams {
        group_by: Some("team".into()),
        interval: Some("hour".into()),
        format: Some("xml".into()),
        ..ReportParams::default()
    };
    assert!(matches!(parse_report(&bad, now), Err(CoreError::Validation(f)) if f.len() == 3));
}

#[test]
fn weeks_start_on_monday_and_months_on_the_first() {
    assert_eq!(period_of(Interval::Week, day("2026-03-15")), Some(day("2026-03-09")), "a Sunday belongs to the week of the Monday before");
    assert_eq!(period_of(Interval::Week, day("2026-03-16")), Some(day("2026-03-16")));
    assert_eq!(period_of(Interval::Month, day("2026-03-31")), Some(day("2026-03-01")));
    assert_eq!(period_of(Interval::Total, day("2026-03-31")), None);
}

#[test]
fn folding_sums_each_group_and_period_exactly_and_leaves_out_ungrouped_dimensions() {
    let query = ReportQuery {
        start: at("2026-03-01T00:00:00Z"),
        end: at("2026-04-01T00:00:00Z"),
        group_by: vec![Dimension::User],
        interval: Interval::Month,
        users: vec![],
        roles: vec![],
        profiles: vec![],
        providers: vec![],
        models: vec![],
    };
    let days = [spend("2026-03-02", "u1", "a", 1), spend("2026-03-20", "u1", "b", 2), spend("2026-03-20", "u2", "a", 4)];
    let rows = fold(&query, &days);
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].user_id.as_deref(), rows[0].cost.micros(), rows[0].requests), (Some("u1"), 3, 2));
    assert_eq!(rows[0].period_start, Some(day("2026-03-01")));
    assert_eq!((rows[0].model.as_ref(), rows[0].provider.as_ref()), (None, None), "not grouped by model or provider");
    let by_model = ReportQuery { group_by: vec![Dimension::Model], interval: Interval::Day, ..query };
    let rows = fold(&by_model, &days);
    assert_eq!(
        rows.iter().map(|r| (r.period_start, r.model.clone(), r.cost.micros())).collect::<Vec<_>>(),
        vec![
            (Some(day("2026-03-02")), Some("a".into()), 1),
            (Some(day("2026-03-20")), Some("a".into()), 4),
            (Some(day("2026-03-20")), Some("b".into()), 2),
        ]
    );
}
