"""pseudovad: video anomaly detection trained on normal video, with GAN-generated pseudo-anomalies."""

__version__ = "0.1.0"
