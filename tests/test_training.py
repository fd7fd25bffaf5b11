import pytest
import torch

from helpers.reproducibility import seed_everything
from helpers.training import accuracy, fit, predict, predicted_classes, progress_line


def separable(n=64):
    x = torch.randn(n, 2)
    return x, (x[:, 0] + x[:, 1] > 0).long()


def test_fit_learns_a_separable_task_and_reports_each_epoch():
    seed_everything(0)
    x, y = separable()
    model = torch.nn.Linear(2, 2)
    before = accuracy(model, x, y)
    history = fit(
        model,
        x,
        y,
        torch.nn.functional.cross_entropy,
        epochs=40,
        batch_size=16,
        lr=0.05,
        progress=False,
    )
    assert len(history) == 40 and history[-1] < history[0] / 2
    assert before < 0.95 <= accuracy(model, x, y)


def test_fit_is_reproducible_under_the_same_seed():
    runs = []
    for _ in range(2):
        seed_everything(1)
        x, y = separable()
        model = torch.nn.Linear(2, 2)
        runs.append(
            fit(
                model,
                x,
                y,
                torch.nn.functional.cross_entropy,
                epochs=3,
                batch_size=8,
                progress=False,
            )
        )
    assert runs[0] == runs[1]


def test_predict_turns_dropout_off_and_keeps_no_graph():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.9))
    x = torch.randn(5, 2)
    assert torch.equal(predict(model, x), predict(model, x))
    assert not predict(model, x).requires_grad


def test_predicted_classes_for_one_and_many_columns():
    assert predicted_classes(torch.tensor([[0.1, 0.9], [2.0, -1.0]])).tolist() == [1, 0]
    assert predicted_classes(torch.tensor([[-0.5], [0.5]])).tolist() == [0, 1]
    assert predicted_classes(torch.tensor([-0.5, 0.5])).tolist() == [0, 1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(epochs=0), "epochs"),
        (dict(epochs=1.5), "epochs"),
        (dict(batch_size=0), "batch_size"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    x, y = separable(8)
    settings = dict(epochs=1, batch_size=4, progress=False) | kwargs
    with pytest.raises(ValueError, match=message):
        fit(torch.nn.Linear(2, 2), x, y, torch.nn.functional.cross_entropy, **settings)


def test_mismatched_data_is_refused():
    x, y = separable(8)
    with pytest.raises(ValueError, match="same length"):
        fit(
            torch.nn.Linear(2, 2),
            x,
            y[:5],
            torch.nn.functional.cross_entropy,
            epochs=1,
            batch_size=4,
        )


def test_progress_leaves_one_run_independent_line(capsys):
    x, y = separable(8)
    history = fit(
        torch.nn.Linear(2, 2),
        x,
        y,
        torch.nn.functional.cross_entropy,
        epochs=3,
        batch_size=4,
        desc="demo",
    )
    printed = capsys.readouterr().out
    # one redraw per epoch, each starting with a carriage return, then one newline
    assert printed.count("\r") == 3 and printed.endswith("\n")
    final = printed.rsplit("\r", 1)[1]
    assert final == progress_line("demo", 3, 3, history[-1]) + "\n"
    assert final.startswith("demo ██████████ epoch 3/3, loss ")
    assert "it/s" not in printed


def test_no_progress_prints_nothing(capsys):
    x, y = separable(8)
    fit(
        torch.nn.Linear(2, 2),
        x,
        y,
        torch.nn.functional.cross_entropy,
        epochs=2,
        batch_size=4,
        progress=False,
    )
    assert capsys.readouterr().out == ""
