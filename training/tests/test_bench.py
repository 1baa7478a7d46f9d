from two_tower.bench import main


def test_bench_prints_both_throughputs_and_the_ratio(capsys):
    assert (
        main(
            [
                "--pairs",
                "3000",
                "--dim",
                "16",
                "--hidden-dim",
                "16",
                "--batch-size",
                "64",
                "--loader-steps",
                "3",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "trainer (resident tensors, index-slice batches):" in out and "peak memory" in out
    assert "DataLoader loop" in out and "ratio:" in out


def test_gpu_bench_prints_every_figure_on_a_cpu_with_quick(capsys, tmp_path):
    assert main(["gpu", "--quick", "--device", "cpu", "--json", str(tmp_path / "gpu.json")]) == 0
    out = capsys.readouterr().out
    for figure in (
        "trainer:",
        "dataloader loop:",
        "ratio:",
        "peak GPU memory:",
        "config-O-shaped run:",
        "host placement:",
        "cuda graphs",
        "worst case",
    ):
        assert figure in out, figure
    assert (tmp_path / "gpu.json").exists()
