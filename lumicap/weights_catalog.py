"""The catalogue of known weight files (see ``lumicap.weights``). One entry per file, and named sets
of the files one thing needs (``lumicap weights download|bundle`` accept both).

Owners: LPIPS/AlexNet (metrics), VGG (perceptual losses), CLIP/GPT-2/ClipCap (teacher), the default
enhancement model ships inside the package and needs no entry. A new entry needs nothing else to be
listed, downloaded, bundled, imported and named when missing; its sha256 is pinned when published,
else recorded at first download.
"""

from lumicap.teacher.presets import PRESETS, weight_names
from lumicap.weights import KnownWeights, register_set, register_weights

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
