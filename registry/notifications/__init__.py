"""Who is told what: mail for decisions, reviews waiting, expiries, withdrawals and
publications (each user chooses), and the webhook events of the same moments."""
