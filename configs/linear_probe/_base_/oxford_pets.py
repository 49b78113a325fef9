# Oxford-IIIT Pets: 37 classes, 3,680 trainval / 3,669 test, no separate val
# split (lambda is chosen on a held-out part of trainval).
#   data/Oxford-IIIT_Pets/{images/,annotations/{trainval,test}.txt}
oxford_pets = dict(
    train=dict(
        dataset=dict(
            type='mmpretrain.OxfordIIITPet',
            data_root='data/Oxford-IIIT_Pets',
            split='trainval')),
    test=dict(
        dataset=dict(
            type='mmpretrain.OxfordIIITPet',
            data_root='data/Oxford-IIIT_Pets',
            split='test')))
