//! Product writes: one transaction each, with its `product.*` outbox event.

use mercato_kernel::error::ApiError;
use mercato_kernel::id::new_id;
use mercato_store::{Db, Tx, is_unique_violation, now_micros};

use crate::domain::Slug;
use crate::domain::product::{
    self, MAX_VARIANTS, Product, ProductDraft, ProductStatus, VariantDraft,
};
use crate::events::{PRODUCT_ARCHIVED, PRODUCT_CREATED, PRODUCT_UPDATED, publish_product};
use crate::store::categories;
use crate::store::products::{self as store, time};

/// What `DELETE /products/:id` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// A draft was deleted for good.
    Deleted,
    /// A published product was archived (kept for orders and history).
    Archived,
}

fn sku_conflict(err: sqlx::Error) -> ApiError {
    if is_unique_violation(&err) {
        ApiError::conflict("duplicate_sku", "another variant already has this sku")
    } else {
        err.into()
    }
}

fn slug_conflict(err: sqlx::Error) -> ApiError {
    if is_unique_violation(&err) {
        ApiError::conflict("duplicate_slug", "another product already has this slug")
    } else {
        err.into()
    }
}

async fn check_categories(tx: &mut Tx, ids: &[String]) -> Result<(), ApiError> {
    if categories::count_existing(tx, ids).await? != ids.len() {
        return Err(ApiError::invalid_field(
            "category_ids",
            "unknown_category",
            "no such category",
        ));
    }
    Ok(())
}

async fn free_slug(tx: &mut Tx, base: &Slug) -> Result<Slug, ApiError> {
    let taken = store::slugs_like(tx, base.as_str()).await?;
    let mut n = 1;
    while taken.iter().any(|s| s == base.with_suffix(n).as_str()) {
        n += 1;
    }
    Ok(base.with_suffix(n))
}

async fn reload(tx: &mut Tx, id: &str) -> Result<Product, ApiError> {
    store::find(tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("product"))
}

/// Creates a product with its variants and publishes `product.created`.
pub async fn create(db: &Db, draft: ProductDraft) -> Result<Product, ApiError> {
    let mut tx = db.begin().await?;
    let category_ids = draft.category_ids.clone().unwrap_or_default();
    check_categories(&mut tx, &category_ids).await?;
    let title = draft.title.clone().unwrap_or_default();
    let slug = match draft.slug.clone() {
        Some(slug) => slug,
        None => free_slug(&mut tx, &Slug::from_title(&title)).await?,
    };
    let now = now_micros();
    let mut product = Product {
        id: new_id("prd"),
        title,
        slug: slug.as_str().to_owned(),
        description: String::new(),
        status: ProductStatus::Draft,
        brand: None,
        tags: Vec::new(),
        attributes: Default::default(),
        images: Vec::new(),
        seo_title: None,
        seo_description: None,
        category_ids: Vec::new(),
        in_stock: false,
        variants: Vec::new(),
        created_at: time(now),
        updated_at: time(now),
    };
    apply(&mut product, draft.clone());
    store::upsert_product(&mut tx, &product)
        .await
        .map_err(slug_conflict)?;
    store::set_categories(&mut tx, &product.id, &category_ids).await?;
    for (position, variant) in draft.variants.iter().enumerate() {
        let position = i64::try_from(position).unwrap_or(i64::MAX);
        store::insert_variant(&mut tx, &product.id, &new_id("var"), position, variant, now)
            .await
            .map_err(sku_conflict)?;
    }
    let product = reload(&mut tx, &product.id).await?;
    publish_product(&mut tx, PRODUCT_CREATED, &product)
        .await
        .map_err(ApiError::internal)?;
    tx.commit().await?;
    Ok(product)
}

fn apply(product: &mut Product, draft: ProductDraft) {
    let ProductDraft {
        title,
        slug,
        description,
        status,
        brand,
        tags,
        attributes,
        images,
        seo_title,
        seo_description,
        category_ids,
        variants: _,
    } = draft;
    if let Some(v) = title {
        product.title = v;
    }
    if let Some(v) = slug {
        product.slug = v.as_str().to_owned();
    }
    if let Some(v) = description {
        product.description = v;
    }
    if let Some(v) = status {
        product.status = v;
    }
    if let Some(v) = brand {
        product.brand = v;
    }
    if let Some(v) = tags {
        product.tags = v;
    }
    if let Some(v) = attributes {
        product.attributes = v;
    }
    if let Some(v) = images {
        product.images = v;
    }
    if let Some(v) = seo_title {
        product.seo_title = v;
    }
    if let Some(v) = seo_description {
        product.seo_description = v;
    }
    if let Some(v) = category_ids {
        product.category_ids = v;
    }
}

/// Changes a product's fields (variants have their own routes) and publishes
/// `product.updated`, or `product.archived` when the status becomes archived.
pub async fn update(db: &Db, id: &str, draft: ProductDraft) -> Result<Product, ApiError> {
    let mut tx = db.begin().await?;
    let mut product = reload(&mut tx, id).await?;
    let was = product.status;
    if let Some(ids) = &draft.category_ids {
        check_categories(&mut tx, ids).await?;
        store::set_categories(&mut tx, id, ids).await?;
    }
    apply(&mut product, draft);
    product.updated_at = time(now_micros());
    store::upsert_product(&mut tx, &product)
        .await
        .map_err(slug_conflict)?;
    let product = reload(&mut tx, id).await?;
    let archived = product.status == ProductStatus::Archived && was != ProductStatus::Archived;
    let kind = if archived {
        PRODUCT_ARCHIVED
    } else {
        PRODUCT_UPDATED
    };
    publish_product(&mut tx, kind, &product)
        .await
        .map_err(ApiError::internal)?;
    tx.commit().await?;
    Ok(product)
}

/// Deletes a draft for good, archives anything else; both publish `product.archived`.
pub async fn remove(db: &Db, id: &str) -> Result<Removal, ApiError> {
    let mut tx = db.begin().await?;
    let mut product = reload(&mut tx, id).await?;
    let removal = if product.status == ProductStatus::Draft {
        store::delete_product(&mut tx, id).await?;
        Removal::Deleted
    } else if product.status == ProductStatus::Archived {
        return Ok(Removal::Archived);
    } else {
        product.status = ProductStatus::Archived;
        product.updated_at = time(now_micros());
        store::upsert_product(&mut tx, &product).await?;
        Removal::Archived
    };
    publish_product(&mut tx, PRODUCT_ARCHIVED, &product)
        .await
        .map_err(ApiError::internal)?;
    tx.commit().await?;
    Ok(removal)
}

/// Adds a variant to a product and publishes `product.updated`.
pub async fn add_variant(
    db: &Db,
    product_id: &str,
    variant: VariantDraft,
) -> Result<Product, ApiError> {
    let mut tx = db.begin().await?;
    let product = reload(&mut tx, product_id).await?;
    if product.variants.len() >= MAX_VARIANTS {
        return Err(ApiError::invalid_field(
            "variants",
            "too_many",
            format!("at most {MAX_VARIANTS} variants"),
        ));
    }
    let position = i64::try_from(product.variants.len()).unwrap_or(i64::MAX);
    let now = now_micros();
    store::insert_variant(&mut tx, product_id, &new_id("var"), position, &variant, now)
        .await
        .map_err(sku_conflict)?;
    finish_variant_change(tx, product_id, now).await
}

/// Replaces a variant's fields and prices and publishes `product.updated`.
pub async fn update_variant(
    db: &Db,
    product_id: &str,
    variant_id: &str,
    build: impl FnOnce(&product::Variant) -> Result<VariantDraft, ApiError>,
) -> Result<Product, ApiError> {
    let mut tx = db.begin().await?;
    let product = reload(&mut tx, product_id).await?;
    let current = product
        .variants
        .iter()
        .find(|v| v.id == variant_id)
        .ok_or_else(|| ApiError::not_found("variant"))?;
    let variant = build(current)?;
    let now = now_micros();
    store::update_variant(&mut tx, variant_id, &variant, now)
        .await
        .map_err(sku_conflict)?;
    finish_variant_change(tx, product_id, now).await
}

/// Deletes a variant and publishes `product.updated`.
pub async fn delete_variant(
    db: &Db,
    product_id: &str,
    variant_id: &str,
) -> Result<Product, ApiError> {
    let mut tx = db.begin().await?;
    if !store::delete_variant(&mut tx, product_id, variant_id).await? {
        return Err(ApiError::not_found("variant"));
    }
    finish_variant_change(tx, product_id, now_micros()).await
}

async fn finish_variant_change(
    mut tx: Tx,
    product_id: &str,
    now: i64,
) -> Result<Product, ApiError> {
    store::refresh_in_stock(&mut tx, product_id, now).await?;
    let product = reload(&mut tx, product_id).await?;
    publish_product(&mut tx, PRODUCT_UPDATED, &product)
        .await
        .map_err(ApiError::internal)?;
    tx.commit().await?;
    Ok(product)
}
