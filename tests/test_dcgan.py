"""`pseudo.generator: dcgan`: branch A becomes a DCGAN generator whose output depends on the clip
only through its bottleneck vector, and the two-branch pipeline trains with it."""

import torch

from pseudovad.models.dcgan import DCGANGenerator
from pseudovad.models.unet import UNet

from helpers import moving_clips
from test_thesis import pipeline


def test_two_branch_pipeline_trains_with_a_dcgan_generator():
    model = pipeline(pseudo={"generator": "dcgan"}, dcgan={"bottleneck": 8})
    generator = model.pseudo.generator
    assert isinstance(generator, DCGANGenerator)
    assert isinstance(model.normal.generator, UNet)  # branch B keeps FFP's U-Net
    optimised = {id(p) for group in model.pseudo.optimizers["generator"].param_groups for p in group["params"]}
    assert optimised == {id(p) for p in generator.parameters()}

    before = [p.clone() for p in generator.parameters()]
    losses = model.train_step({"clips": moving_clips(2)})
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert any(not torch.equal(old, new) for old, new in zip(before, generator.parameters()))
    assert model.sample_images({"clips": moving_clips(2)})["pseudo-anomaly"].shape == (2, 1, 32, 32)


def test_dcgan_output_depends_on_the_clip_only_through_the_bottleneck():
    model = pipeline(pseudo={"generator": "dcgan"}, dcgan={"bottleneck": 8})
    generator = model.pseudo.generator.eval()
    # Two stages and nothing else: no module can carry a skip around the code.
    assert [name for name, _ in generator.named_children()] == ["encoder", "decoder"]
    inputs = moving_clips(2)[:, :-1].flatten(1, 2)
    with torch.no_grad():
        code = generator.encoder(inputs)
        assert code.shape == (2, 8, 1, 1)
        torch.testing.assert_close(generator.decoder(code), generator(inputs))
