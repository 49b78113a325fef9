# Stanford Cars: 196 classes, 8,144 train / 8,041 test, no val split.
#   data/Stanford_Cars/{car_ims/,cars_annos.mat}  or
#   data/Stanford_Cars/{cars_train/,cars_test/,devkit/cars_{train,test_annos_withlabels}.mat,...}
stanford_cars = dict(
    train=dict(
        dataset=dict(
            type='mmpretrain.StanfordCars',
            data_root='data/Stanford_Cars',
            split='train')),
    test=dict(
        dataset=dict(
            type='mmpretrain.StanfordCars',
            data_root='data/Stanford_Cars',
            split='test')))
