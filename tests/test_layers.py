"""The shape of the code: layers import downwards only, and only scripts read FLAGS.

Layers, bottom to top (a module may import from its own layer's base modules and from lower ones):

  0 base       modeling, optimization, tokenization
  1 cli        command-line plumbing, the flag groups
  2 training   model_fn parts             inference   loaded models, SavedModel, Predictor
  3 runtime    Estimators and run loop    exporting   export formats and their checks
  4 tasks/     task libraries (may use each other)    serving/  the service library
  5 scripts    entry points (never imported by a module below them, never by each other)
"""

import ast
import os
import subprocess
import sys

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LAYERS = {"modeling": 0, "optimization": 0, "tokenization": 0, "cli": 1, "training": 2,
          "inference": 2, "runtime": 3, "exporting": 3, "tasks": 4, "serving": 4}
SCRIPT_LAYER = 5


def _project_modules():
    """{module name: path} of the repository's own modules (top level, tasks/, serving/)."""
    modules = {}
    for name in sorted(os.listdir(REPO_ROOT)):
        path = os.path.join(REPO_ROOT, name)
        if name.endswith(".py"):
            modules[name[:-3]] = path
        elif name in ("tasks", "serving") and os.path.isdir(path):
            for sub in sorted(os.listdir(path)):
                if sub.endswith(".py"):
                    modules[f"{name}.{sub[:-3]}".replace(".__init__", "")] = os.path.join(path, sub)
    return modules


MODULES = _project_modules()


def _is_script(tree):
    return any(isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
               for node in tree.body)


def _layer(module, is_script):
    if is_script:
        return SCRIPT_LAYER
    return LAYERS.get(module.split(".")[0])


def _imports(tree):
    """Top-level names of the project modules a file imports (anywhere in it)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in MODULES}


def _parse_all():
    trees = {}
    for module, path in MODULES.items():
        with open(path, encoding="utf-8") as f:
            trees[module] = ast.parse(f.read())
    return trees


TREES = _parse_all()


def _reads_flag_values(node):
    """True if the code under `node` reads `FLAGS.<name>` or `FLAGS[...]`."""
    for child in ast.walk(node):
        if isinstance(child, (ast.Attribute, ast.Subscript)):
            value = child.value
            if (isinstance(value, ast.Name) and value.id == "FLAGS") or (
                    isinstance(value, ast.Attribute) and value.attr == "FLAGS"):
                return True
    return False


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    tree = TREES[module]
    own = _layer(module, _is_script(tree))
    if own is None:
        pytest.skip(f"{module} is not in a layer (e.g. pyproject helpers)")
    for imported in sorted(_imports(tree)):
        imported_tree = TREES[imported]
        if _is_script(imported_tree) and own == SCRIPT_LAYER and module != imported:
            pytest.fail(f"script {module} imports script {imported}: move what it needs into "
                        f"a library module")
        target = _layer(imported, _is_script(imported_tree))
        same_package = imported.split(".")[0] == module.split(".")[0]
        if target is None or (target == own and same_package):
            continue
        assert target < own, f"{module} (layer {own}) imports {imported} (layer {target})"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_only_entry_points_read_flags(module):
    tree = TREES[module]
    if not _is_script(tree):
        # cli.py may name FLAGS as the registry its groups define flags in; it reads no value.
        assert not _reads_flag_values(tree), f"{module} is a library and must not read FLAGS"
        return
    # In a script, FLAGS is read in main() (and set up under __main__), never in helpers.
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name != "main":
            assert not _reads_flag_values(node), (
                f"{module}.{node.name} reads FLAGS; pass the values from main() instead")
    flag_definitions = [node for node in tree.body if isinstance(node, ast.Expr)
                        and "flags.DEFINE" in ast.unparse(node)]
    assert not flag_definitions, f"{module} defines flags at import time; use define_flags()"


def test_reference_import_paths_still_work():
    import extract_features
    import run_classifier
    import run_pretraining

    for name in ("DataProcessor", "InputExample", "InputFeatures", "PaddingInputExample",
                 "convert_single_example", "file_based_convert_examples_to_features",
                 "file_based_input_fn_builder", "create_model", "model_fn_builder",
                 "register_processor", "ColaProcessor", "MnliProcessor", "MrpcProcessor",
                 "XnliProcessor", "input_fn_builder", "convert_examples_to_features"):
        assert hasattr(run_classifier, name), name
    for name in ("model_fn_builder", "input_fn_builder", "gather_indexes",
                 "get_masked_lm_output", "get_next_sentence_output", "metric_fn"):
        assert hasattr(run_pretraining, name), name
    for name in ("InputExample", "InputFeatures", "read_examples", "convert_examples_to_features",
                 "model_fn_builder", "input_fn_builder", "BertEncoder"):
        assert hasattr(extract_features, name), name


def test_export_model_helpfull_lists_only_its_own_flags():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "export_model.py", "--helpfull"], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert "--helpfull" in result.stdout, result.stderr[-2000:]  # absl exits 1 after help.
    for absent in ("--do_train", "--task_name", "--num_gpus", "--use_tpu", "--data_dir"):
        assert absent not in result.stdout, absent
    for present in ("--format", "--predict_saved_model", "--bert_config_file", "--task"):
        assert present in result.stdout, present
