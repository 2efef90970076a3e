//! The category tree: materialized paths, moves and the cycle rule.

use serde::Serialize;

use super::check_len;

/// Longest category name, in characters.
pub const MAX_NAME: usize = 100;

/// A category as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// `cat_…`.
    pub id: String,
    /// Parent category, `None` at the root.
    pub parent_id: Option<String>,
    /// Display name.
    pub name: String,
    /// Unique URL slug.
    pub slug: String,
    /// Ids from the root down, `/cat_a/cat_b/`.
    pub path: String,
    /// Order among siblings.
    pub position: i64,
}

/// A category with its sub-categories, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CategoryNode {
    /// `cat_…`.
    pub id: String,
    /// Parent category.
    pub parent_id: Option<String>,
    /// Display name.
    pub name: String,
    /// URL slug.
    pub slug: String,
    /// Ids from the root down.
    pub path: String,
    /// Order among siblings.
    pub position: i64,
    /// Sub-categories, by position.
    #[schema(no_recursion)]
    pub children: Vec<CategoryNode>,
}

/// Checks a category name: 1–100 characters after trimming.
pub fn parse_name(raw: &str) -> Result<String, String> {
    check_len(raw.trim(), 1, MAX_NAME).map(str::to_owned)
}

/// The path of a category `id` under `parent` (or at the root).
pub fn child_path(parent: Option<&Category>, id: &str) -> String {
    match parent {
        Some(p) => format!("{}{id}/", p.path),
        None => format!("/{id}/"),
    }
}

/// Whether moving `category` under `new_parent` would make it its own ancestor.
pub fn would_cycle(category: &Category, new_parent: &Category) -> bool {
    new_parent.path.starts_with(&category.path)
}

/// Nests a flat list (any order) into trees, siblings by position then name.
pub fn build_tree(mut all: Vec<Category>) -> Vec<CategoryNode> {
    all.sort_by(|a, b| (a.position, &a.name, &a.id).cmp(&(b.position, &b.name, &b.id)));
    fn children_of(parent: Option<&str>, all: &[Category]) -> Vec<CategoryNode> {
        all.iter()
            .filter(|c| c.parent_id.as_deref() == parent)
            .map(|c| CategoryNode {
                id: c.id.clone(),
                parent_id: c.parent_id.clone(),
                name: c.name.clone(),
                slug: c.slug.clone(),
                path: c.path.clone(),
                position: c.position,
                children: children_of(Some(&c.id), all),
            })
            .collect()
    }
    children_of(None, &all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(id: &str, parent: Option<&Category>, position: i64) -> Category {
        Category {
            id: id.into(),
            parent_id: parent.map(|p| p.id.clone()),
            name: id.into(),
            slug: id.into(),
            path: child_path(parent, id),
            position,
        }
    }

    #[test]
    fn moving_under_a_descendant_is_a_cycle() {
        let a = cat("a", None, 0);
        let b = cat("b", Some(&a), 0);
        let c = cat("c", Some(&b), 0);
        assert!(would_cycle(&a, &c));
        assert!(would_cycle(&a, &a));
        assert!(!would_cycle(&c, &a));
    }

    #[test]
    fn trees_nest_children_by_position() {
        let a = cat("a", None, 0);
        let b = cat("b", Some(&a), 2);
        let c = cat("c", Some(&a), 1);
        let tree = build_tree(vec![b, c, a]);
        assert_eq!(tree.len(), 1);
        let ids: Vec<_> = tree[0].children.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["c", "b"]);
    }
}
