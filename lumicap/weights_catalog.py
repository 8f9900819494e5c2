"""The catalogue of known weight files (see ``lumicap.weights``). One entry per file.

Owners: LPIPS/AlexNet (metrics), VGG (perceptual losses), CLIP/GPT-2/ClipCap (teacher), the default
enhancement model ships inside the package and needs no entry.
"""

from lumicap.weights import KnownWeights, register_weights

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
