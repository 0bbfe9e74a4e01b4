"""Fake external services (Google Sheets + OAuth, Twilio) as real HTTP servers on 127.0.0.1.

They speak the real request and response shapes, so the real client libraries talk to them through
the `SHEETS_API_URL` / `GOOGLE_TOKEN_URI` / `TWILIO_API_URL` settings; nothing in the app is mocked.
"""
