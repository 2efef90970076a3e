//! Category writes: creation, moves that rewrite a subtree's paths, deletion of empty ones.

use mercato_kernel::error::ApiError;
use mercato_kernel::id::new_id;
use mercato_store::{Db, Tx, is_unique_violation, now_micros};

use crate::domain::Slug;
use crate::domain::category::{Category, child_path, would_cycle};
use crate::store::categories as store;

/// Fields of a new category, parsed.
#[derive(Debug, Clone)]
pub struct NewCategory {
    /// Display name.
    pub name: String,
    /// Explicit slug, else made from the name.
    pub slug: Option<Slug>,
    /// Parent id.
    pub parent_id: Option<String>,
    /// Position among siblings, else after the last.
    pub position: Option<i64>,
}

/// Changes to a category; `parent_id: Some(None)` moves it to the root.
#[derive(Debug, Clone, Default)]
pub struct CategoryChange {
    /// New name.
    pub name: Option<String>,
    /// New slug.
    pub slug: Option<Slug>,
    /// New parent.
    pub parent_id: Option<Option<String>>,
    /// New position.
    pub position: Option<i64>,
}

fn slug_conflict(err: sqlx::Error) -> ApiError {
    if is_unique_violation(&err) {
        ApiError::conflict("duplicate_slug", "another category already has this slug")
    } else {
        err.into()
    }
}

async fn parent(tx: &mut Tx, id: Option<&str>) -> Result<Option<Category>, ApiError> {
    let Some(id) = id else { return Ok(None) };
    match store::find(tx, id).await? {
        Some(parent) => Ok(Some(parent)),
        None => Err(ApiError::invalid_field(
            "parent_id",
            "unknown_category",
            "no such category",
        )),
    }
}

/// Loads a category by id or slug.
pub async fn get(db: &Db, key: &str) -> Result<Category, ApiError> {
    let mut conn = db.pool().acquire().await?;
    store::find(&mut conn, key)
        .await?
        .ok_or_else(|| ApiError::not_found("category"))
}

/// Creates a category under its parent (or at the root).
pub async fn create(db: &Db, new: NewCategory) -> Result<Category, ApiError> {
    let mut tx = db.begin().await?;
    let parent = parent(&mut tx, new.parent_id.as_deref()).await?;
    let id = new_id("cat");
    let position = match new.position {
        Some(p) => p,
        None => store::next_position(&mut tx, parent.as_ref().map(|p| p.id.as_str())).await?,
    };
    let slug = new.slug.unwrap_or_else(|| Slug::from_title(&new.name));
    let category = Category {
        path: child_path(parent.as_ref(), &id),
        parent_id: parent.map(|p| p.id),
        id,
        name: new.name,
        slug: slug.as_str().to_owned(),
        position,
    };
    store::insert(&mut tx, &category, now_micros())
        .await
        .map_err(slug_conflict)?;
    tx.commit().await?;
    Ok(category)
}

/// Renames, repositions or moves a category; a move rewrites the paths of its whole subtree
/// in the same transaction and refuses to put a category under itself or a descendant.
pub async fn update(db: &Db, id: &str, change: CategoryChange) -> Result<Category, ApiError> {
    let mut tx = db.begin().await?;
    let mut category = store::find(&mut tx, id)
        .await?
        .filter(|c| c.id == id)
        .ok_or_else(|| ApiError::not_found("category"))?;
    let old_path = category.path.clone();
    if let Some(parent_id) = change.parent_id {
        let parent = parent(&mut tx, parent_id.as_deref()).await?;
        if parent.as_ref().is_some_and(|p| would_cycle(&category, p)) {
            return Err(ApiError::invalid_field(
                "parent_id",
                "category_cycle",
                "a category cannot move under itself or one of its descendants",
            ));
        }
        category.path = child_path(parent.as_ref(), &category.id);
        category.parent_id = parent.map(|p| p.id);
    }
    if let Some(name) = change.name {
        category.name = name;
    }
    if let Some(slug) = change.slug {
        category.slug = slug.as_str().to_owned();
    }
    if let Some(position) = change.position {
        category.position = position;
    }
    store::update(&mut tx, &category, &old_path, now_micros())
        .await
        .map_err(slug_conflict)?;
    tx.commit().await?;
    Ok(category)
}

/// Deletes a category that has neither sub-categories nor products.
pub async fn delete(db: &Db, id: &str) -> Result<(), ApiError> {
    let mut tx = db.begin().await?;
    let category = store::find(&mut tx, id)
        .await?
        .filter(|c| c.id == id)
        .ok_or_else(|| ApiError::not_found("category"))?;
    let (children, products) = store::usage(&mut tx, &category.id).await?;
    if children > 0 || products > 0 {
        return Err(ApiError::conflict(
            "category_not_empty",
            format!("category has {children} sub-categories and {products} products"),
        ));
    }
    store::delete(&mut tx, &category.id).await?;
    tx.commit().await?;
    Ok(())
}
