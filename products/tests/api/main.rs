//! Integration tests of the products API over real HTTP. Each test gets its
//! own service and database (see `helpers`); run them against PostgreSQL
//! with `TEST_DATABASE_URL=postgres://…`.

mod auth;
mod batch;
mod caching;
mod categories;
mod concurrency;
mod crud;
mod errors;
mod helpers;
mod images;
mod list;
mod revocation;
mod seed;
mod sorting;
mod validation;
