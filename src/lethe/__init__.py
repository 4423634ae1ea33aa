"""lethe: label-free machine unlearning (LFSSD) for image classifiers, with evidence."""

__version__ = "0.1.0"
