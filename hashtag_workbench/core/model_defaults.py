"""The model kinds' defaults that `hashtags train` shows, as plain constants.

The model configs (core/finetune.py, core/conse.py, core/bovw.py) read them from here, and so does
`jobs/train.py`'s TrainConfig: one place per default, and `hashtags train --help` names them without
importing torch.
"""
EPOCHS = 13          # fine-tuning epochs (at most: early stopping may keep an earlier one)
TRAIN_BLOCKS = 3     # trailing CNN blocks fine-tuned (efficientnet-lite0 has 16, resnet18 8)
TOP_T = 10           # ConSE: the top-T ImageNet classes combined
TEMPERATURE = 2.0    # ConSE's temperature variant: softmax(logits / this) over all classes
CODEBOOK = 256       # BoVW: visual words in the k-means codebook
