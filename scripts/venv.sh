# Sourced by scripts/*: create .venv and install apimd with its pinned test dependencies, once per
# change of pyproject.toml or constraints.txt.
python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    "$python" -m venv .venv
fi
stamp=.venv/.apimd-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    echo "setting up .venv: installing apimd and its pinned dependencies (the first time: a minute or two)…" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
    echo "$want" > "$stamp"
fi
