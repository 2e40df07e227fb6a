"""The certification case: applicants by token, checks, working-day deadlines, decisions,
certificates, delivery, revocations and announcements."""
