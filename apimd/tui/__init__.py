"""The Textual client (SPEC §8): talks to the daemon only through `apimd.client` and the model.

`apimd.tui.app.build_app` builds the app for production and for tests alike."""
