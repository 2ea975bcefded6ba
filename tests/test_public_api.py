import subprocess
import sys

import genmodels


def test_every_public_name_resolves():
    for name in genmodels.__all__:
        assert getattr(genmodels, name) is not None, name


def test_import_is_lazy():
    code = ("import sys, genmodels; heavy = [m for m in ('sklearn', 'scipy', 'matplotlib', "
            "'genmodels.models.hmm', 'genmodels.estimators.decomposition') if m in sys.modules];"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
