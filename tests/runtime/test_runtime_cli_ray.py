"""facecolor-batch's --ray and --num-actors flags, as a user types them."""

from click.testing import CliRunner

from facecolor.runtime.cli import main


def test_num_actors_without_ray_is_a_usage_error(tmp_path):
    (tmp_path / "in").mkdir()
    result = CliRunner().invoke(main, [str(tmp_path / "in"), str(tmp_path / "out"), "--num-actors", "2"])
    assert result.exit_code == 2 and "--num-actors needs --ray" in result.output


def test_help_explains_ray_and_object_storage():
    result = CliRunner().invoke(main, ["--help"])
    assert "--ray [ADDRESS]" in result.output and "s3://" in result.output
