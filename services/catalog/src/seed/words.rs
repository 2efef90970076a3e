//! Word lists of the catalog generator.

/// Leaf categories as `Root/Child[/Grandchild]` with the product nouns sold in them.
pub const LEAVES: &[(&str, &[&str])] = &[
    (
        "Clothing/Tops/T-Shirts",
        &["T-Shirt", "Tank Top", "Polo Shirt"],
    ),
    ("Clothing/Tops/Sweaters", &["Sweater", "Cardigan", "Hoodie"]),
    (
        "Clothing/Bottoms",
        &["Jeans", "Trousers", "Shorts", "Skirt"],
    ),
    (
        "Clothing/Outerwear",
        &["Jacket", "Coat", "Parka", "Raincoat"],
    ),
    ("Shoes/Sneakers", &["Sneakers", "Running Shoes"]),
    ("Shoes/Boots", &["Boots", "Chelsea Boots"]),
    ("Shoes/Sandals", &["Sandals", "Slides"]),
    ("Bags/Backpacks", &["Backpack", "Daypack"]),
    ("Bags/Totes", &["Tote Bag", "Shopper"]),
    ("Bags/Wallets", &["Wallet", "Card Holder"]),
    ("Home/Kitchen", &["Mug", "Teapot", "Cutting Board", "Bowl"]),
    ("Home/Decor", &["Vase", "Candle", "Cushion", "Mirror"]),
    ("Home/Furniture", &["Chair", "Lamp", "Stool", "Shelf"]),
    ("Home/Bedding", &["Blanket", "Duvet Cover", "Pillowcase"]),
    ("Sports/Fitness", &["Yoga Mat", "Dumbbell", "Water Bottle"]),
    ("Sports/Outdoor", &["Tent", "Sleeping Bag", "Camping Stove"]),
    (
        "Sports/Cycling",
        &["Bike Helmet", "Bike Light", "Saddle Bag"],
    ),
    ("Electronics/Audio/Headphones", &["Headphones", "Earbuds"]),
    ("Electronics/Audio/Speakers", &["Speaker", "Soundbar"]),
    (
        "Electronics/Accessories",
        &["Charger", "Phone Case", "Cable", "Power Bank"],
    ),
    ("Beauty/Skincare", &["Face Cream", "Serum", "Cleanser"]),
    ("Beauty/Fragrance", &["Perfume", "Eau de Toilette"]),
    ("Toys/Games", &["Puzzle", "Board Game", "Card Game"]),
    ("Toys/Plush", &["Plush Toy", "Teddy Bear"]),
    ("Jewelry/Necklaces", &["Necklace", "Pendant"]),
    ("Jewelry/Rings", &["Ring", "Signet Ring"]),
    ("Jewelry/Watches", &["Watch", "Chronograph"]),
];

/// First words of titles.
pub const ADJECTIVES: &[&str] = &[
    "Vintage",
    "Classic",
    "Modern",
    "Minimal",
    "Rustic",
    "Premium",
    "Everyday",
    "Compact",
    "Oversized",
    "Slim",
    "Handmade",
    "Lightweight",
    "Heavy-Duty",
    "Soft",
    "Bold",
    "Elegant",
    "Urban",
    "Nordic",
    "Coastal",
    "Alpine",
    "Essential",
    "Signature",
    "Heritage",
    "Sleek",
    "Cozy",
    "Rugged",
    "Refined",
    "Bright",
    "Timeless",
    "Weekend",
];

/// Materials, used in titles and attributes.
pub const MATERIALS: &[&str] = &[
    "Leather",
    "Cotton",
    "Linen",
    "Wool",
    "Canvas",
    "Bamboo",
    "Oak",
    "Walnut",
    "Ceramic",
    "Glass",
    "Steel",
    "Aluminium",
    "Recycled",
    "Organic Cotton",
    "Cashmere",
    "Silk",
    "Denim",
    "Suede",
    "Cork",
    "Stoneware",
];

/// Colours of attributes and variant options.
pub const COLOURS: &[&str] = &[
    "black",
    "white",
    "navy",
    "grey",
    "olive",
    "sand",
    "burgundy",
    "forest green",
    "sky blue",
    "terracotta",
    "cream",
    "charcoal",
];

/// Sizes of variant options.
pub const SIZES: &[&str] = &["XS", "S", "M", "L", "XL"];

/// First halves of brand names.
pub const BRAND_HEADS: &[&str] = &[
    "North", "Alder", "Copper", "Maple", "Fjord", "Urban", "Coastal", "Atlas", "Lumen", "Harbor",
    "Juniper", "Ember",
];

/// Second halves of brand names.
pub const BRAND_TAILS: &[&str] = &["& Co", "Works", "Studio", "Supply", "Goods"];

/// Free tags.
pub const TAGS: &[&str] = &[
    "new",
    "bestseller",
    "gift",
    "eco",
    "limited",
    "sale",
    "handmade",
    "vegan",
    "classic",
    "summer",
    "winter",
    "travel",
    "office",
    "outdoor",
    "premium",
];

/// Description sentences; `{title}`, `{material}`, `{brand}`, `{colour}` are filled in.
pub const SENTENCES: &[&str] = &[
    "The {title} is made from carefully selected {material} for years of everyday use.",
    "Designed by {brand}, it pairs clean lines with practical details.",
    "Available in {colour} and other shades that match almost anything.",
    "Every piece is checked by hand before it leaves the workshop.",
    "Its {material} ages beautifully and only gets better with time.",
    "Light enough to take anywhere, sturdy enough to last.",
    "A thoughtful gift for anyone who values quality over quantity.",
    "Care is simple: wipe clean or wash gently, and let it air dry.",
];
