"""What a run forgets and how forgetting is judged.

- `scenarios`: the scenario rows (`SCENARIOS`, `scenario(name)`), read by the steps, the gate, the CLI;
- `spec`: the forget spec a run freezes (`ForgetSpec`, format `lethe-forget-spec/1`);
- `resolved`: a forget set resolved against the model's data (`ResolvedForgetSet`);
- `decisions`, `alpha`: the typed words records carry (the gate's verdict, how α was chosen).

Import the submodules: this package imports nothing itself, so the CLI can read the scenario rows
without loading the storage layer that the spec's record needs.
"""
