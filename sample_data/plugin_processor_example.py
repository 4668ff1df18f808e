"""A custom task for run_classifier.py, added without editing the script.

A plugin is any Python file (or importable module) that subclasses `run_classifier.DataProcessor`
and registers the class under a task name. `--processor_module` imports it before the task is
looked up, so `--task_name` can name the new task:

  python run_classifier.py --processor_module=sample_data/plugin_processor_example.py \
    --task_name=bilingual_sentiment --data_dir=sample_data/classifier \
    --vocab_file=$BERT_DIR/vocab.txt --bert_config_file=$BERT_DIR/bert_config.json \
    --init_checkpoint=$BERT_DIR/bert_model.ckpt --do_train=true --do_eval=true \
    --output_dir=/tmp/bilingual_sentiment

The files in sample_data/classifier are `label<TAB>text` with a header row. (The built-in generic
`tsv` task reads them too; a plugin is for formats or rules the generic tasks cannot express, such
as the text clean-up and the fixed label order below.)
"""

import os

import run_classifier
import tokenization


# The decorator form. The call form does the same:
#   run_classifier.register_processor("bilingual_sentiment", BilingualSentimentProcessor)
@run_classifier.register_processor("bilingual_sentiment")
class BilingualSentimentProcessor(run_classifier.DataProcessor):
    """Short English and Chinese sentences labelled `negative` or `positive`."""

    def get_train_examples(self, data_dir):
        return self._create_examples(os.path.join(data_dir, "train.tsv"), "train")

    def get_dev_examples(self, data_dir):
        return self._create_examples(os.path.join(data_dir, "dev.tsv"), "dev")

    def get_test_examples(self, data_dir):
        return self._create_examples(os.path.join(data_dir, "test.tsv"), "test")

    def get_labels(self):
        # The order fixes the label ids: 0 = negative, 1 = positive (the "positive class" of the
        # two-class metrics eval_f1, eval_precision, eval_recall and eval_auc).
        return ["negative", "positive"]

    def _create_examples(self, input_file, set_type):
        examples = []
        for i, row in enumerate(self._read_tsv(input_file)):
            if i == 0:  # The header row `label<TAB>text`.
                continue
            label = tokenization.convert_to_unicode(row[0]).strip()
            # Collapse runs of whitespace; the tokenizer would split on them anyway, and the guid
            # keeps the row number for tracing a prediction back to its line.
            text = " ".join(tokenization.convert_to_unicode(row[1]).split())
            examples.append(run_classifier.InputExample(
                guid=f"{set_type}-{i}", text_a=text, text_b=None, label=label))
        return examples
