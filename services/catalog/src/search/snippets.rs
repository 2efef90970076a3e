//! Highlighted excerpts of hits: `<mark>…</mark>` around matched words (typos included), the
//! rest HTML-escaped.

use std::collections::BTreeMap;

use tantivy::Searcher;
use tantivy::query::FuzzyTermQuery;
use tantivy::schema::Field;
use tantivy::snippet::SnippetGenerator;
use tantivy::{Score, Term};

use super::SearchError;
use super::query::FUZZY_MIN_CHARS;
use super::schema::Fields;

/// Longest snippet, in characters.
const SNIPPET_CHARS: usize = 160;
/// Most index terms a single typed word may highlight.
const MAX_EXPANSIONS: usize = 32;

/// Snippet generators for the description, falling back to the title.
pub(crate) struct Snippets {
    description: SnippetGenerator,
    title: SnippetGenerator,
}

impl Snippets {
    /// Generators highlighting `words` (analyzed, with their typed length) and, for long words,
    /// the index terms one edit away, as the query matched them.
    pub(crate) fn new(
        searcher: &Searcher,
        words: &[(String, usize)],
        fields: &Fields,
    ) -> Result<Self, SearchError> {
        Ok(Self {
            description: generator(searcher, words, fields.description)?,
            title: generator(searcher, words, fields.title)?,
        })
    }

    /// The description excerpt, or the title when only the title matches.
    pub(crate) fn render(&self, title: &str, description: &str) -> String {
        let mut snippet = self.description.snippet(description);
        if snippet.highlighted().is_empty() {
            let in_title = self.title.snippet(title);
            if !in_title.highlighted().is_empty() || description.is_empty() {
                snippet = in_title;
            }
        }
        if snippet.fragment().is_empty() {
            return escape(&description.chars().take(SNIPPET_CHARS).collect::<String>());
        }
        snippet.set_snippet_prefix_postfix("<mark>", "</mark>");
        snippet.to_html()
    }
}

fn generator(
    searcher: &Searcher,
    words: &[(String, usize)],
    field: Field,
) -> Result<SnippetGenerator, SearchError> {
    let mut terms: BTreeMap<String, Score> = BTreeMap::new();
    for (word, typed) in words {
        terms.insert(word.clone(), 1.0);
        if *typed < FUZZY_MIN_CHARS {
            continue;
        }
        let automaton =
            FuzzyTermQuery::new(Term::from_field_text(field, word), 1, true).automaton()?;
        let mut expanded = 0;
        for segment in searcher.segment_readers() {
            let index = segment.inverted_index(field)?;
            let mut stream = index.terms().search(&automaton).into_stream()?;
            while expanded < MAX_EXPANSIONS && stream.advance() {
                if let Ok(text) = std::str::from_utf8(stream.key()) {
                    terms.entry(text.to_owned()).or_insert(0.5);
                    expanded += 1;
                }
            }
        }
    }
    let tokenizer = searcher.index().tokenizer_for_field(field)?;
    Ok(SnippetGenerator::new(
        terms,
        tokenizer,
        field,
        SNIPPET_CHARS,
    ))
}

/// `text` safe inside HTML.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_excerpts_are_escaped() {
        assert_eq!(super::escape("<b>&'\""), "&lt;b&gt;&amp;&#39;&quot;");
    }
}
