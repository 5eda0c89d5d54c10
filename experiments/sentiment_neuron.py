"""The sentiment neuron at GPU scale (Radford et al. 2017): 4096 mLSTM units, batch 128 × 256-byte windows,
Adam 5e-4 decayed linearly, as in the paper, for a run that fits ~25 minutes of one GPU (5,000 updates,
164M bytes) instead of the paper's month on Amazon reviews. Run: rlx probe-sentiment --experiment sentiment_neuron
(add --corpus FILE for a larger corpus than the default snippets)."""

from rlx.experiment import SentimentExperiment

EXPERIMENT = SentimentExperiment(
    name="sentiment_neuron",
    description="mLSTM 4096 LM + L1 probe, paper settings, GPU-sized budget",
    seeds=1,
    lm={
        "hidden": 4096,
        "embed": 64,
        "batch": 128,
        "window": 256,
        "steps": 5000,
        "lr": 5e-4,
        "clip": 1.0,
        "chunk": 250,
        "dtype": "auto",
    },
    reps=10,
)
