"""The accuracy ledger: one task metric (top-1/top-5 on a labelled image folder) through every stage of a
deployment, with confidence intervals and paired significance tests. Layers: `dataset` (labels and streaming
decode) and `stats` (pure numbers) at the bottom; `ledger` (typed results); `stages` (what runs each stage);
`evaluate` (the streaming loop) composes them; `markdown` renders."""
