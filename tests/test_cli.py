from vlmsae.cli import main


def test_check_store_describes_it(tiny_store, capsys):
    assert main(["check-store", str(tiny_store.path)]) == 0
    out = capsys.readouterr().out
    assert "image\t2000 rows\t400 eval" in out and "truth\tyes" in out


def test_missing_store_is_one_line(tmp_path, capsys):
    assert main(["check-store", str(tmp_path / "x.zarr")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "x.zarr: embedding store not found" in err


def test_summary_of_missing_run(tmp_path, capsys):
    assert main(["summary", str(tmp_path)]) == 1
    assert "no summary.json" in capsys.readouterr().err
