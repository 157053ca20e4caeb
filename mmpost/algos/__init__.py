"""Pure, registered training math: advantages, policy losses, KL estimators, loss aggregation, SFT
losses and schedules. Each module registers its functions in `mmpost.registry` when imported; the
registries import these modules lazily, so nothing needs importing here."""
