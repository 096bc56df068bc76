"""Tests that drive pages in headless Chromium (Debian's chromium and chromium-driver)."""
