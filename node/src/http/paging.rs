//! Paging, as AWS's list operations do it: `nextToken` lists (a page after the last key
//! seen) and `marker` lists (the certificate and policy operations). List handlers pick one
//! and call it; none slices by hand.

use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::error::ApiResult;

/// The `nextToken`/`maxResults` query of most list operations.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TokenQuery {
    /// The key after which the page starts.
    pub next_token: Option<String>,
    /// The page size.
    pub max_results: Option<usize>,
}

impl TokenQuery {
    /// `maxResults`, or `default`, kept within 1..=`max`.
    pub fn size(&self, default: usize, max: usize) -> usize {
        self.max_results.unwrap_or(default).clamp(1, max)
    }
}

/// One page of `items` (sorted by `key`) after the `after` token, and the next token when
/// more follow: the key of the page's last item.
pub fn page_after<'i, T>(
    items: &'i [T],
    key: impl Fn(&T) -> &str,
    after: Option<&str>,
    size: usize,
) -> (&'i [T], Option<String>) {
    let start = after.map_or(0, |a| items.partition_point(|i| key(i) <= a));
    let end = (start + size).min(items.len());
    let page = &items[start..end];
    let next = (end < items.len()).then(|| page.last().map(|i| key(i).to_string())).flatten();
    (page, next)
}

/// A list call's answer: `doc`, with `nextToken` when more pages follow.
pub fn page_response(doc: Value, next: Option<String>) -> ApiResult {
    with_next(doc, "nextToken", next)
}

/// The `pageSize`/`marker`/`isAscendingOrder` query of the certificate and policy lists.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct MarkerQuery {
    /// The page size.
    pub page_size: Option<usize>,
    /// The key of the last item of the previous page.
    pub marker: Option<String>,
    /// Oldest (or A) first.
    pub is_ascending_order: Option<bool>,
}

impl MarkerQuery {
    /// Name-ordered lists (policies, targets) run A to Z unless asked otherwise.
    pub fn ascending_by_default(mut self) -> MarkerQuery {
        self.is_ascending_order.get_or_insert(true);
        self
    }
}

/// One page after `marker` (the key of the last item of the previous page), newest first
/// unless `isAscendingOrder`; items are ordered by (creation date, id).
pub fn marker_page<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> (u64, String),
    q: &MarkerQuery,
) -> (Vec<T>, Option<String>) {
    items.sort_by_key(&key);
    if !q.is_ascending_order.unwrap_or(false) {
        items.reverse();
    }
    let start = match &q.marker {
        Some(m) => items.iter().position(|i| key(i).1 == *m).map_or(items.len(), |p| p + 1),
        None => 0,
    };
    let size = q.page_size.unwrap_or(25).clamp(1, 250);
    let end = (start + size).min(items.len());
    let next = (end < items.len() && end > start).then(|| key(&items[end - 1]).1);
    let page = items.into_iter().skip(start).take(end.saturating_sub(start)).collect();
    (page, next)
}

/// A marker list's answer: `doc`, with `nextMarker` when more pages follow.
pub fn marker_response(doc: Value, next: Option<String>) -> ApiResult {
    with_next(doc, "nextMarker", next)
}

fn with_next(mut doc: Value, field: &str, next: Option<String>) -> ApiResult {
    if let Some(n) = next {
        doc[field] = json!(n);
    }
    Ok(HttpResponse::Ok().json(doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_pages_walk_the_whole_list_once() {
        let items: Vec<String> = (0..7).map(|i| format!("k{i}")).collect();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = page_after(&items, |s| s.as_str(), after.as_deref(), 3);
            seen.extend(page.iter().cloned());
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, items);
    }

    #[test]
    fn marker_pages_run_newest_first_unless_ascending() {
        let items = vec![(1, "a".to_string()), (3, "c".to_string()), (2, "b".to_string())];
        let q = MarkerQuery { page_size: Some(2), ..MarkerQuery::default() };
        let (page, next) = marker_page(items.clone(), |x| x.clone(), &q);
        assert_eq!(page.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(), ["c", "b"]);
        assert_eq!(next.as_deref(), Some("b"));
        let q = MarkerQuery { marker: next, ..q };
        let (page, next) = marker_page(items.clone(), |x| x.clone(), &q);
        assert_eq!(page.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(next, None);
        let q = MarkerQuery::default().ascending_by_default();
        let (page, _) = marker_page(items, |x| x.clone(), &q);
        assert_eq!(page[0].1, "a");
    }
}
