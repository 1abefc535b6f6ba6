"""The last line of a conv run: network3.py's figure, the test accuracy at
the best validation epoch, taking the last of equal epochs as network3.py
does, and saying so where it differs from the first."""

from nn_gpu.cli.train import book_line


class PresetRun:
    preset = "ch6-relu"

    def uses_preset_settings(self):
        return True


def records(validation):
    return [{"epoch": epoch, "validation_accuracy": v, "test_accuracy": 0.9 + epoch / 1000,
             "test_correct": 9000 + 10 * epoch, "test_total": 10000}
            for epoch, v in enumerate(validation, 1)]


def test_one_best_epoch_is_named_alone():
    line = book_line(PresetRun(), records([0.97, 0.99, 0.98]))
    assert line == "Test accuracy at the best validation epoch (2): 90.20%; the book: 99.23%"


def test_equal_best_epochs_take_the_last_and_say_so():
    line = book_line(PresetRun(), records([0.97, 0.99, 0.98, 0.99, 0.96]))
    assert line.startswith("Test accuracy at the best validation epoch (4, the last of the "
                           "equal epochs from 2, as network3.py picks): 90.40%")
