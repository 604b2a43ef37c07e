"""The session payload the Django benchmarks store: what django.contrib.auth.login leaves, plus a little app data
(~330 bytes as JSON)."""

LOGIN = {
    "_auth_user_id": "42",
    "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
    "_auth_user_hash": "6f1ed002ab5595859014ebf0951522d9c9d2d3e3ed6f2aeb6a6a4d1b2c3d4e5f",
    "cart": [{"sku": "A-1001", "qty": 2}, {"sku": "B-2002", "qty": 1}],
    "last_page": "/products/garden/chairs/?page=3",
    "theme": "dark",
}
