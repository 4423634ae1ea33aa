"""KFP components: one thin `@dsl.component` per step, each calling one function of `lethe.steps`.

Lightweight Python components: KFP serialises each function's source into the pipeline YAML, so
every body imports what it needs itself and delegates at once to the library. The image
(`LETHE_IMAGE`, read when components.image is imported) has lethe, and kfp, installed.

Each component carries its `Step` row (components/step.py) and is imported from its module
(`from components.unlearning import unlearn`); `components.step.step_rows()` finds them all.
"""
