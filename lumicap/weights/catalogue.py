"""The catalogue of known weight files (see ``lumicap.weights``): it only declares entries. One entry per file,
and named sets of the files one thing needs (``lumicap weights download|bundle`` accept both).

Owners: LPIPS/AlexNet (metrics), VGG (perceptual losses), CLIP/GPT-2/ClipCap (teacher), the baselines'
official pretrained checkpoints (``OFFICIAL_MODELS``: each also a set, and a name usable as a model); the
default enhancement model ships inside the package and needs no entry. A new entry needs nothing else to be
listed, downloaded, bundled, imported and named when missing; its sha256 is pinned when published,
else recorded at first download.
"""

from dataclasses import dataclass

from lumicap.weights.registry import KnownWeights, register_set, register_weights
from lumicap.weights.teacher_presets import PRESETS, weight_names

# --- metrics: LPIPS (AlexNet backbone, v0.1 linear heads) ---------------------------------------------
register_weights(KnownWeights(
    name="alexnet-torchvision",
    filename="alexnet-owt-7be5be79.pth",
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    sha256_prefix="7be5be79",
    size=244_408_911,
    description="torchvision AlexNet ImageNet weights (LPIPS backbone)",
))
register_weights(KnownWeights(
    name="lpips-alex-v0.1",
    filename="alex.pth",
    url="https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/alex.pth",
    size=6_009,
    description="LPIPS v0.1 linear heads for AlexNet",
))

# --- losses: VGG perceptual features -----------------------------------------------------------------
register_weights(KnownWeights(
    name="vgg16-torchvision",
    filename="vgg16-397923af.pth",
    url="https://download.pytorch.org/models/vgg16-397923af.pth",
    sha256_prefix="397923af",
    size=553_433_881,
    description="torchvision VGG16 ImageNet weights (RCTNet perceptual loss)",
))
register_weights(KnownWeights(
    name="vgg19-torchvision",
    filename="vgg19-dcbb9e9d.pth",
    url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
    sha256_prefix="dcbb9e9d",
    size=574_673_361,
    description="torchvision VGG19 ImageNet weights (UHDFour perceptual loss)",
))

# --- teacher: ClipCap -----------------------------------------------------------------------------------
register_weights(KnownWeights(
    name="clipcap-coco",
    filename="coco_weights.pt",
    repo_id="akhaliq/CLIP-prefix-captioning-COCO-weights",
    size=636_000_000,
    description="ClipCap COCO, MLP mapper, fine-tuned GPT-2, prefix 10 (ViT-B/32)",
))
register_weights(KnownWeights(
    name="clipcap-conceptual",
    filename="conceptual_weights.pt",
    repo_id="akhaliq/CLIP-prefix-captioning-conceptual-weights",
    size=636_000_000,
    description="ClipCap Conceptual Captions, MLP mapper, fine-tuned GPT-2, prefix 10 (ViT-B/32)",
))
register_weights(KnownWeights(
    name="clipcap-coco-transformer",
    filename="transformer_weights.pt",
    # The authors publish it on Google Drive only (README of rmokady/CLIP_prefix_caption); no mirror known.
    url="https://drive.usercontent.google.com/download?id=1GYPToCqFREwi285wPLhuVExlz7DDUDfJ&export=download&confirm=t",
    description="ClipCap COCO, transformer mapper (8 layers, prefix/clip length 40), frozen GPT-2 (RN50x4)",
))

# --- teacher: CLIP image towers (OpenAI originals; the URL path holds the file's sha256) --------------
register_weights(KnownWeights(
    name="clip-vit-b32-openai",
    filename="ViT-B-32.pt",
    url="https://openaipublic.azureedge.net/clip/models/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
    sha256="40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af",
    size=354_000_000,
    description="OpenAI CLIP ViT-B/32 (TorchScript archive, fp16): image tower of the MLP ClipCap models",
))
register_weights(KnownWeights(
    name="clip-rn50x4-openai",
    filename="RN50x4.pt",
    url="https://openaipublic.azureedge.net/clip/models/7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd/RN50x4.pt",
    sha256="7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd",
    size=402_000_000,
    description="OpenAI CLIP RN50x4 (TorchScript archive, fp16): image tower of the transformer ClipCap model",
))
register_weights(KnownWeights(
    name="clip-vit-b32-hf",
    filename="model.safetensors",
    repo_id="openai/clip-vit-base-patch32",
    size=605_000_000,
    description="CLIP ViT-B/32 in Hugging Face format (full CLIPModel; use with clip-vit-b32-hf-config)",
))
register_weights(KnownWeights(
    name="clip-vit-b32-hf-config",
    filename="config.json",
    repo_id="openai/clip-vit-base-patch32",
    size=4_200,
    description="config.json of openai/clip-vit-base-patch32",
))

# --- teacher: GPT-2 (original weights for the frozen-GPT ClipCap; tokenizer for every preset) ---------
register_weights(KnownWeights(
    name="gpt2-hf",
    filename="model.safetensors",
    repo_id="openai-community/gpt2",
    size=548_105_171,
    description="GPT-2 124M original weights (frozen language model of the transformer ClipCap)",
))
register_weights(KnownWeights(
    name="gpt2-tokenizer",
    filename="tokenizer.json",
    repo_id="openai-community/gpt2",
    size=1_355_256,
    description="GPT-2 byte-level BPE tokenizer (tokenizer.json)",
))


# --- sets -------------------------------------------------------------------------------------------------
# Each teacher preset's set shares the preset's name, so 'lumicap weights bundle clipcap-coco' gathers
# everything MultimodalFeatureLoss.from_pretrained("clipcap-coco") reads.
for _name, _manifest in PRESETS.items():
    register_set(_name, weight_names(_manifest), f"teacher preset: {_manifest['description']}")
register_set(
    "lpips",
    ["alexnet-torchvision", "lpips-alex-v0.1"],
    "LPIPS: AlexNet backbone + v0.1 linear heads (lumicap eval's LPIPS column)",
)

# --- official pretrained LOL checkpoints of the baselines ------------------------------------------------
# Each name also works as a model (``--model retinexformer-lol-v1-official``, ``model.init_weights=NAME``):
# ``OFFICIAL_MODELS`` says which registry model it is and which catalogue file(s) hold its weights. Files
# committed in the authors' repositories are fetched from the pinned commit; the others are on the
# authors' Google Drive, which wants a browser: the offline/download error names the page, the file and
# where to put it.


@dataclass(frozen=True)
class OfficialModel:
    """A name usable as a model: a registry model plus the catalogue file(s) holding its official weights.

    ``tf_folders`` (RetinexNet): ``files`` are (index, data) pairs of TensorFlow checkpoints, one per folder.
    """

    name: str
    model: str
    files: tuple[str, ...]
    trained_on: str
    tf_folders: tuple[str, ...] = ()


OFFICIAL_MODELS: dict[str, OfficialModel] = {}


def official_model(name: str) -> OfficialModel | None:
    return OFFICIAL_MODELS.get(name)


def _official(name: str, model: str, trained_on: str, files: tuple[KnownWeights, ...], tf_folders=()) -> None:
    for entry in files:
        register_weights(entry)
    OFFICIAL_MODELS[name] = OfficialModel(name, model, tuple(e.name for e in files), trained_on, tuple(tf_folders))
    # A set of the same name: 'lumicap weights download|bundle NAME' fetches every file (RetinexNet has four)
    # and the sets table of 'lumicap weights list' shows the name to give as a model.
    register_set(name, [e.name for e in files], f"official {model} weights, trained on {trained_on} "
                 f"(usable as --model {name})")


def _drive(name: str, model: str, filename: str, page: str, what: str, size: int | None = None) -> None:
    _official(name, model, "LOL-v1", (KnownWeights(
        name=name, filename=filename, url=page, size=size,
        description=f"{what}: file {filename} on the authors' Google Drive (download it in a browser)",
    ),))


_IAT = "https://github.com/cuiziteng/Illumination-Adaptive-Transformer/raw/c76472265247f47cea57649af28b15018bb64cb1"
for _name, _file, _sha, _data in (
    ("iat-lol-v1-official", "best_Epoch_lol_v1.pth",
     "6fb32236152283d3f3633ea1b79601c7e819efbf9d87d6b4767e1db0f1f3435b", "LOL-v1 (published 23.38 dB / 0.809)"),
    ("iat-lol-v2-real-official", "best_Epoch_lol.pth",
     "9564b7e10882e688ac817ae6fd164544d05b9f74232de56c33ed7f9dabf7bdc4", "LOL-v2 real (published 23.50 dB / 0.824)"),
    ("iat-exposure-official", "best_Epoch_exposure.pth",
     "15a9494582f028bef996d4af7145860eaa5d67799d2b0625ed93ff8c546ea3ee", "exposure correction (Afifi et al.)"),
):
    _official(_name, "iat", _data.split(" (")[0], (KnownWeights(
        name=_name, filename=_file, url=f"{_IAT}/IAT_enhance/{_file}", sha256=_sha, size=427_160,
        description=f"official IAT weights, {_data}",
    ),))

_drive("retinexformer-lol-v1-official", "retinexformer", "LOL_v1.pth",
       "https://drive.google.com/drive/folders/1ynK5hfQachzc8y96ZumhkPPDXzHJwaQV",
       "official Retinexformer weights, LOL-v1 (BasicSR 'params')")
_drive("snr-aware-lol-v1-official", "snr_aware", "LOLv1.pth",
       "https://drive.google.com/file/d/1g3NKmhz7WFLCm3t9qitqJqb_J7V4nzdb/view",
       "official SNR-Aware weights, LOL-v1 (in the authors' download of all their models)")
_drive("llformer-lol-v1-official", "llformer", "model_bestPSNR.pth",
       "https://drive.google.com/drive/folders/1J7NvvPsCtT0j8Rd9ombJ6sVIC6v0Xweb",
       "official LLFormer weights, LOL")
_drive("uhdfour-lol-v1-official", "uhdfour", "LOLv1_checkpoint.pt",
       "https://drive.google.com/drive/folders/1hLehCbHG-L-Dq4qJne5s721B6cfI1fSE",
       "official UHDFour weights, LOL-v1")
_official("mirnet-lol-v1-official", "mirnet", "LOL-v1", (KnownWeights(
    name="mirnet-lol-v1-official", filename="model_lol.pth",
    url="https://drive.usercontent.google.com/download?id=1t_FcBuMZD5th2KWVVNXYGJ7bMz5ZAWvF&export=download&confirm=t",
    description="official MIRNet enhancement weights, LOL (Google Drive file of swz30/MIRNet's README)",
),))

# RetinexNet: two TensorFlow checkpoints committed in the repository (model/Decom, model/Relight).
_RETINEXNET = "https://github.com/weichen582/RetinexNet/raw/fdc15ebc179209d17c77371a825df351a5be3ff5/model"
_official("retinexnet-lol-v1-official", "retinexnet", "LOL-v1 + 1000 synthetic pairs", tuple(
    KnownWeights(
        name=f"retinexnet-lol-v1-official-{folder.lower()}-{part}",
        filename=filename,
        url=f"{_RETINEXNET}/{folder}/{filename}",
        sha256=sha,
        size=size,
        description=f"official RetinexNet TensorFlow checkpoint, model/{folder} {part} "
        f"(part of retinexnet-lol-v1-official)",
    )
    for folder, part, filename, sha, size in (
        ("Decom", "index", "RetinexNet-tensorflow.index",
         "ee034c9bea109e8557db700cfd50636f1f93590a8b2e3af7ad873a865cbc45cd", 3_100),
        ("Decom", "data", "RetinexNet-tensorflow.data-00000-of-00001",
         "c12d0caa441bcb2c36f4d0cbba445909ebdd53306aa06fddc7668cf16b881cf3", 4_026_440),
        ("Relight", "index", "RetinexNet-tensorflow.index",
         "04d4714c22e9f5d2a5d637543fc432ef92483d580861523bed45a948bf3226a2", 4_130),
        ("Relight", "data", "RetinexNet-tensorflow.data-00000-of-00001", None, None),
    )
), tf_folders=("Decom", "Relight"))
