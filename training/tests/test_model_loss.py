import torch
import torch.nn.functional as F

from two_tower.loss import in_batch_softmax_loss
from two_tower.model import TwoTower


def test_untrained_towers_score_the_raw_cosine():
    torch.manual_seed(0)
    q, d = torch.randn(5, 12), torch.randn(7, 12)
    model = TwoTower(12, 32)
    qv, dv = model.encode_queries(q), model.encode_docs(d)
    expected = F.normalize(q, dim=-1) @ F.normalize(d, dim=-1).T
    assert torch.allclose(qv @ dv.T, expected, atol=1e-6)
    assert torch.allclose(qv.norm(dim=-1), torch.ones(5))


def test_accidental_hits_are_masked():
    torch.manual_seed(0)
    q = F.normalize(torch.randn(3, 4), dim=-1)
    d = F.normalize(torch.randn(3, 4), dim=-1)
    docs = torch.tensor([7, 8, 7])  # rows 0 and 2 share a document
    labels = torch.arange(3)
    masked = in_batch_softmax_loss(q, d, labels, docs, docs, 0.1, reduction="none")
    # Row 0 must not see column 2 (the same doc 7) as a negative: equal to the loss over columns 0 and 1 only.
    only01 = F.cross_entropy((q[:1] @ d[:2].T) / 0.1, torch.tensor([0]))
    assert torch.allclose(masked[0], only01)
    unique = torch.tensor([1, 2, 3])
    assert not torch.allclose(
        in_batch_softmax_loss(q, d, labels, unique, unique, 0.1, reduction="none")[0], only01
    )


def test_logq_correction_lowers_popular_documents_logits():
    q = torch.eye(2)
    d = torch.eye(2)
    docs = torch.tensor([0, 1])
    plain = in_batch_softmax_loss(q, d, torch.arange(2), docs, docs, 1.0, reduction="none")
    log_q = torch.log(torch.tensor([0.9, 0.1]))
    corrected = in_batch_softmax_loss(q, d, torch.arange(2), docs, docs, 1.0, log_q, reduction="none")
    assert corrected[0] > plain[0]  # the popular doc 0 is pushed down in its own row
    assert corrected[1] < plain[1]


def test_loss_is_fp32_even_for_half_precision_inputs():
    q = F.normalize(torch.randn(4, 8), dim=-1).bfloat16()
    d = F.normalize(torch.randn(4, 8), dim=-1).bfloat16()
    docs = torch.arange(4)
    assert in_batch_softmax_loss(q, d, torch.arange(4), docs, docs, 0.05).dtype == torch.float32
