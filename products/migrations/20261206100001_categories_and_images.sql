-- The storefront: every product belongs to one category (a lowercase slug;
-- existing products become `general`, the default for new ones) and may
-- have a picture (`image_url`, NULL when it has none).
ALTER TABLE products ADD COLUMN category TEXT NOT NULL DEFAULT 'general';
ALTER TABLE products ADD COLUMN image_url TEXT;

-- `?category=` lists live products of one category in creation order.
CREATE INDEX products_live_category ON products (category, created_at, id) WHERE deleted_at IS NULL;

-- Demo products loaded before this change get the category and picture the
-- bundled catalog now gives them; nobody can have set these columns yet.
UPDATE products SET category = 'coffee', image_url = '/assets/products/pour-over-coffee-kettle.svg' WHERE seed_key = 'pour-over-coffee-kettle';
UPDATE products SET category = 'coffee', image_url = '/assets/products/ceramic-coffee-mug.svg' WHERE seed_key = 'ceramic-coffee-mug';
UPDATE products SET category = 'coffee', image_url = '/assets/products/single-origin-beans.svg' WHERE seed_key = 'single-origin-beans';
UPDATE products SET category = 'kitchen', image_url = '/assets/products/creme-brulee-torch.svg' WHERE seed_key = 'creme-brulee-torch';
UPDATE products SET category = 'kitchen', image_url = '/assets/products/chefs-knife.svg' WHERE seed_key = 'chefs-knife';
UPDATE products SET category = 'kitchen', image_url = '/assets/products/cast-iron-skillet.svg' WHERE seed_key = 'cast-iron-skillet';
UPDATE products SET category = 'outdoor', image_url = '/assets/products/merino-beanie.svg' WHERE seed_key = 'merino-beanie';
UPDATE products SET category = 'outdoor', image_url = '/assets/products/waxed-canvas-backpack.svg' WHERE seed_key = 'waxed-canvas-backpack';
UPDATE products SET category = 'outdoor', image_url = '/assets/products/trail-running-socks.svg' WHERE seed_key = 'trail-running-socks';
UPDATE products SET category = 'outdoor', image_url = '/assets/products/insulated-water-bottle.svg' WHERE seed_key = 'insulated-water-bottle';
UPDATE products SET category = 'desk', image_url = '/assets/products/mechanical-keyboard.svg' WHERE seed_key = 'mechanical-keyboard';
UPDATE products SET category = 'desk', image_url = '/assets/products/desk-lamp.svg' WHERE seed_key = 'desk-lamp';
UPDATE products SET category = 'desk', image_url = '/assets/products/fountain-pen.svg' WHERE seed_key = 'fountain-pen';
UPDATE products SET category = 'home', image_url = '/assets/products/scented-candle.svg' WHERE seed_key = 'scented-candle';
UPDATE products SET category = 'home', image_url = '/assets/products/yoga-mat.svg' WHERE seed_key = 'yoga-mat';
UPDATE products SET category = 'home', image_url = '/assets/products/houseplant-monstera.svg' WHERE seed_key = 'houseplant-monstera';
